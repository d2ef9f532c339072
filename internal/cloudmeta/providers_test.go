package cloudmeta

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// wantFixture is what each provider's recorded responses (testdata/imds/<provider>) describe.
var wantFixture = map[Provider]Metadata{
	AWS: {
		Provider: "AWS", AccountID: "123456789012", InstanceID: "i-0123456789abcdef0", InstanceType: "m6i.large",
		LifeCycle: "spot", Region: "eu-west-1", AvailabilityZone: "eu-west-1b", AvailabilityZoneID: "euw1-az3",
		LocalIPv4: "10.0.12.34", PublicIPv4: "203.0.113.25",
	},
	GCP: {
		Provider: "GCP", AccountID: "my-project-4711", InstanceID: "4520031799277581759", InstanceType: "e2-standard-4",
		LifeCycle: "spot", Region: "europe-west1", AvailabilityZone: "europe-west1-b",
		LocalIPv4: "10.132.0.7", PublicIPv4: "198.51.100.17",
	},
	Azure: {
		Provider: "Azure", AccountID: "8d1b2c3a-4e5f-6a7b-8c9d-0e1f2a3b4c5d", InstanceID: "02aab8a4-74ef-476e-8182-f6d2ba4166a6",
		InstanceType: "Standard_D4s_v5", LifeCycle: "spot", Region: "westeurope", AvailabilityZone: "westeurope-2",
		LocalIPv4: "10.224.0.4", PublicIPv4: "20.50.60.70",
	},
	Hetzner: {
		Provider: "Hetzner", InstanceID: "42424242", Region: "eu-central", AvailabilityZone: "fsn1-dc14",
		LocalIPv4: "10.0.0.2", PublicIPv4: "192.0.2.80",
	},
	DigitalOcean: {
		Provider: "DigitalOcean", InstanceID: "2756294", Region: "nyc3", LocalIPv4: "10.132.255.113", PublicIPv4: "104.131.20.105",
	},
	Oracle: {
		Provider: "Oracle", AccountID: "ocid1.tenancy.oc1..aaaaaaaaexampletenancy", InstanceID: "ocid1.instance.oc1.phx.anyhqljtexampleinstance",
		InstanceType: "VM.Standard.E4.Flex", Region: "us-phoenix-1", AvailabilityZone: "Uocm:PHX-AD-1", AvailabilityZoneID: "phx-ad-1",
		LocalIPv4: "10.0.10.21",
	},
	Alibaba: {
		Provider: "Alibaba", AccountID: "1234567890123456", InstanceID: "i-bp13znx0m0me8cquu123", InstanceType: "ecs.g6e.large",
		Region: "cn-hangzhou", AvailabilityZone: "cn-hangzhou-i", LocalIPv4: "192.168.12.34", PublicIPv4: "47.96.10.20",
	},
	Scaleway: {
		Provider: "Scaleway", AccountID: "11111111-2222-4333-8444-555555555555", InstanceID: "5a7c8d9e-0f1a-4b2c-8d3e-4f5a6b7c8d9e",
		InstanceType: "DEV1-M", Region: "fr-par", AvailabilityZone: "fr-par-1", LocalIPv4: "10.64.12.7", PublicIPv4: "51.15.200.10",
	},
}

func TestFetchEachProvider(t *testing.T) {
	for _, p := range providerNames() {
		t.Run(p, func(t *testing.T) {
			s := newIMDS(t, Provider(p))
			md, err := providers[Provider(p)].fetch(testFetcher(t, s))
			if err != nil {
				t.Fatalf("fetch: %v (requests %q)", err, s.log())
			}
			if want := wantFixture[Provider(p)]; md != want {
				t.Errorf("fetched\n %+v\nwant\n %+v", md, want)
			}
		})
	}
}

func TestProviderHeadersAreRequired(t *testing.T) {
	// A service that insists on its header must see it on every request: the imitations
	// refuse requests without it, so a successful fetch proves the header was sent. Here the
	// check is made explicit by asserting what a request without it gets.
	for _, tc := range []struct {
		p    Provider
		path string
		code int
	}{
		{GCP, "/computeMetadata/v1/instance/id", http.StatusForbidden},
		{Azure, "/metadata/instance?api-version=2021-02-01", http.StatusBadRequest},
		{Oracle, "/opc/v2/instance/", http.StatusUnauthorized},
	} {
		s := newIMDS(t, tc.p)
		_, err := get(testFetcher(t, s), tc.path, nil)
		var se *statusError
		if !errors.As(err, &se) || se.code != tc.code {
			t.Errorf("%s without its header: err %v, want HTTP %d", tc.p, err, tc.code)
		}
	}
}

func TestAWSTokenModes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mode      tokenMode
		wantToken bool // GETs carry the token
	}{
		{"imdsv2 optional uses the token", tokenOptional, true},
		{"imdsv2 required uses the token", tokenRequired, true},
		{"token refused falls back to v1", tokenRefused, false},
		{"token answer too slow falls back to v1", tokenSlow, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newIMDS(t, AWS)
			s.tokens = tc.mode
			var mu sync.Mutex
			var sawToken []bool
			s.handle("/latest/meta-data/instance-life-cycle", func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				sawToken = append(sawToken, r.Header.Get(awsTokenHeader) == testToken)
				_, _ = w.Write([]byte("on-demand"))
			})
			md, err := fetchAWS(testFetcher(t, s))
			if err != nil {
				t.Fatalf("fetch: %v (requests %q)", err, s.log())
			}
			want := wantFixture[AWS]
			want.LifeCycle = "on-demand"
			if md != want {
				t.Errorf("fetched %+v, want %+v", md, want)
			}
			if log := s.log(); log[0] != "PUT "+awsTokenPath {
				t.Errorf("first request %q, want the token PUT", log[0])
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(sawToken, []bool{tc.wantToken}) {
				t.Errorf("GET carried token: %v, want %v", sawToken, tc.wantToken)
			}
		})
	}
}

func TestAlibabaHardenedMode(t *testing.T) {
	s := newIMDS(t, Alibaba)
	s.tokens = tokenRequired
	md, err := fetchAlibaba(testFetcher(t, s))
	if err != nil || md != wantFixture[Alibaba] {
		t.Fatalf("hardened mode: %+v, %v", md, err)
	}
	s2 := newIMDS(t, Alibaba)
	s2.tokens = tokenRefused
	md, err = fetchAlibaba(testFetcher(t, s2))
	if err != nil || md != wantFixture[Alibaba] {
		t.Fatalf("normal mode after refused token: %+v, %v", md, err)
	}
}

func TestOptionalFieldsMissing(t *testing.T) {
	// 404 on an optional path means the instance has no such thing: field empty, no error.
	for _, tc := range []struct {
		p       Provider
		missing []string
		clear   func(*Metadata)
	}{
		{
			AWS,
			[]string{"/latest/meta-data/public-ipv4", "/latest/meta-data/placement/availability-zone-id"},
			func(m *Metadata) { m.PublicIPv4, m.AvailabilityZoneID = "", "" },
		},
		{
			GCP,
			[]string{"/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip", "/computeMetadata/v1/instance/scheduling/provisioning-model"},
			// Without provisioning-model, preemptible=TRUE decides.
			func(m *Metadata) { m.PublicIPv4, m.LifeCycle = "", "preemptible" },
		},
		{
			Hetzner,
			[]string{"/hetzner/v1/metadata/private-networks", "/hetzner/v1/metadata/public-ipv4"},
			func(m *Metadata) { m.LocalIPv4, m.PublicIPv4 = "", "" },
		},
		{
			DigitalOcean,
			[]string{"/metadata/v1/interfaces/private/0/ipv4/address"},
			func(m *Metadata) { m.LocalIPv4 = "" },
		},
		{Oracle, []string{"/opc/v2/vnics/"}, func(m *Metadata) { m.LocalIPv4 = "" }},
		// No elastic IP: the fixed public IP is asked for, and there is none either.
		{Alibaba, []string{"/latest/meta-data/eipv4"}, func(m *Metadata) { m.PublicIPv4 = "" }},
	} {
		t.Run(string(tc.p), func(t *testing.T) {
			s := newIMDS(t, tc.p)
			for _, path := range tc.missing {
				s.handle(path, http.NotFound)
			}
			md, err := providers[tc.p].fetch(testFetcher(t, s))
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			want := wantFixture[tc.p]
			tc.clear(&want)
			if md != want {
				t.Errorf("fetched %+v, want %+v", md, want)
			}
		})
	}
}

func TestRequiredDocumentMissingFails(t *testing.T) {
	for _, tc := range []struct {
		p    Provider
		path string
	}{
		{AWS, awsIdentityPath},
		{GCP, "/computeMetadata/v1/instance/id"},
		{Azure, "/metadata/instance"},
		{Hetzner, "/hetzner/v1/metadata/instance-id"},
		{DigitalOcean, "/metadata/v1/id"},
		{Oracle, "/opc/v2/instance/"},
		{Alibaba, "/latest/meta-data/instance-id"},
		{Scaleway, "/conf"},
	} {
		s := newIMDS(t, tc.p).handle(tc.path, http.NotFound)
		md, err := providers[tc.p].fetch(testFetcher(t, s))
		if !errors.Is(err, ErrNotFound) || !md.IsZero() {
			t.Errorf("%s with %s missing: %+v, %v; want nothing and ErrNotFound", tc.p, tc.path, md, err)
		}
	}
}

func TestBadAnswers(t *testing.T) {
	big := strings.Repeat("x", DefaultMaxResponseBytes+1)
	for _, tc := range []struct {
		name    string
		p       Provider
		path    string
		h       http.HandlerFunc
		wantErr error
		// partial: the required part still arrived, only an optional field is lost.
		partial func(*Metadata)
	}{
		{
			name: "aws identity document is HTML", p: AWS, path: awsIdentityPath,
			h: body("<html><body>captive portal</body></html>"), wantErr: ErrMalformed,
		},
		{name: "aws identity document oversized", p: AWS, path: awsIdentityPath, h: body(big), wantErr: ErrTooLarge},
		{
			name: "aws identity document without instanceId", p: AWS, path: awsIdentityPath,
			h: body(`{"accountId":"1","region":"x"}`), wantErr: ErrMalformed,
		},
		{
			name: "aws public ip garbage", p: AWS, path: "/latest/meta-data/public-ipv4", h: body("not-an-ip"), wantErr: ErrMalformed,
			partial: func(m *Metadata) { m.PublicIPv4 = "" },
		},
		{
			name: "aws life cycle 500", p: AWS, path: "/latest/meta-data/instance-life-cycle",
			h: func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }, wantErr: errStatus(500),
			partial: func(m *Metadata) { m.LifeCycle = "" },
		},
		{
			name: "gcp answer without flavor header", p: GCP, path: "/computeMetadata/v1/instance/id",
			h: body("4520031799277581759"), wantErr: ErrMalformed,
		},
		{
			name: "gcp zone multi-line", p: GCP, path: "/computeMetadata/v1/instance/zone", h: body("a\nb"), wantErr: ErrMalformed,
			partial: func(m *Metadata) { m.AvailabilityZone, m.Region = "", "" },
		},
		{name: "azure truncated json", p: Azure, path: "/metadata/instance", h: body(`{"compute":{"vmId":"x"`), wantErr: ErrMalformed},
		{name: "azure oversized", p: Azure, path: "/metadata/instance", h: body(big), wantErr: ErrTooLarge},
		{
			name: "hetzner private networks not yaml list", p: Hetzner, path: hetznerPrivateNetworks,
			h: body("ip: [unclosed"), wantErr: ErrMalformed, partial: func(m *Metadata) { m.LocalIPv4 = "" },
		},
		{name: "hetzner instance id empty", p: Hetzner, path: "/hetzner/v1/metadata/instance-id", h: body("  \n"), wantErr: ErrMalformed},
		{
			name: "oracle vnics garbage", p: Oracle, path: "/opc/v2/vnics/", h: body("[{"), wantErr: ErrMalformed,
			partial: func(m *Metadata) { m.LocalIPv4 = "" },
		},
		{name: "scaleway control characters", p: Scaleway, path: "/conf", h: body(`{"id":"a\u0001b"}`), wantErr: ErrMalformed},
		{
			name: "digitalocean region too long", p: DigitalOcean, path: "/metadata/v1/region", h: body(strings.Repeat("r", 300)),
			wantErr: ErrMalformed, partial: func(m *Metadata) { m.Region = "" },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newIMDS(t, tc.p).handle(tc.path, tc.h)
			f := testFetcher(t, s)
			md, err := providers[tc.p].fetch(f)
			if !matches(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			var want Metadata
			if tc.partial != nil {
				want = wantFixture[tc.p]
				tc.partial(&want)
			}
			if md != want {
				t.Errorf("fetched %+v, want %+v", md, want)
			}
			if errors.Is(tc.wantErr, ErrTooLarge) && f.counters.oversized.Load() != 1 {
				t.Errorf("oversized counter %d, want 1", f.counters.oversized.Load())
			}
		})
	}
}

func TestSlowAnswerTimesOut(t *testing.T) {
	release := make(chan struct{})
	s := newIMDS(t, Scaleway).handle("/conf", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	f := testFetcher(t, s)
	f.timeout = 100 * time.Millisecond
	_, err := fetchScaleway(f)
	if err == nil || !strings.Contains(err.Error(), "context deadline exceeded") {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if f.counters.failures.Load() != 1 {
		t.Errorf("failed requests %d, want 1", f.counters.failures.Load())
	}
}

func TestBodyExactlyAtCapIsAccepted(t *testing.T) {
	doc := `{"id":"abc"}`
	s := newIMDS(t, Scaleway).handle("/conf", body(doc))
	f := testFetcher(t, s)
	f.maxBytes = int64(len(doc))
	if md, err := fetchScaleway(f); err != nil || md.InstanceID != "abc" {
		t.Fatalf("body of exactly max bytes: %+v, %v", md, err)
	}
	f.maxBytes--
	if _, err := fetchScaleway(f); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("body one byte over: %v, want ErrTooLarge", err)
	}
}

func body(s string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(s)) }
}

// errStatus stands for "a *statusError with this HTTP code" in test tables.
type errStatus int

func (e errStatus) Error() string { return http.StatusText(int(e)) }

func matches(err, want error) bool {
	if code := errStatus(0); errors.As(want, &code) {
		var se *statusError
		return errors.As(err, &se) && se.code == int(code)
	}
	return errors.Is(err, want)
}

func TestLifeCycleMapping(t *testing.T) {
	for _, tc := range []struct{ model, preemptible, want string }{
		{"SPOT", "TRUE", "spot"},
		{"STANDARD", "FALSE", "on-demand"},
		{"", "TRUE", "preemptible"},
		{"", "FALSE", "on-demand"},
		{"", "", ""},
	} {
		if got := gcpLifeCycle(tc.model, tc.preemptible); got != tc.want {
			t.Errorf("gcpLifeCycle(%q, %q) = %q, want %q", tc.model, tc.preemptible, got, tc.want)
		}
	}
	for priority, want := range map[string]string{"Spot": "spot", "Regular": "on-demand", "Low": "low-priority", "": "", "Other": ""} {
		if got := azureLifeCycle(priority); got != want {
			t.Errorf("azureLifeCycle(%q) = %q, want %q", priority, got, want)
		}
	}
}

func TestGarbageAddressIsDroppedAlone(t *testing.T) {
	// One malformed address costs that field only; the fetch reports it so it is retried.
	s := newIMDS(t, GCP).handle("/computeMetadata/v1/instance/network-interfaces/0/ip", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Metadata-Flavor", "Google")
		_, _ = w.Write([]byte("10.132.0"))
	})
	md, err := fetchGCP(testFetcher(t, s))
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	want := wantFixture[GCP]
	want.LocalIPv4 = ""
	if md != want {
		t.Fatalf("fetched %+v, want %+v", md, want)
	}
}

func TestOracleOlderIMDSWithoutTenant(t *testing.T) {
	md, err := parseOracleInstance([]byte(`{"id":"ocid1.instance.x","compartmentId":"ocid1.compartment.y","region":"iad","availabilityDomain":"Abcd:US-ASHBURN-AD-2"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Metadata{Provider: "Oracle", AccountID: "ocid1.compartment.y", InstanceID: "ocid1.instance.x", Region: "iad", AvailabilityZone: "Abcd:US-ASHBURN-AD-2"}
	if md != want {
		t.Fatalf("parsed %+v, want %+v", md, want)
	}
	if _, err := parseOracleInstance([]byte(`{"id":"x","shape":"<script>"}`)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("markup in shape: %v", err)
	}
}
