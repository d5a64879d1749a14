package messagebird

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	mbapi "github.com/messagebird/go-rest-api/v9"
)

// Bird has keys of two generations, and each works only at its own API:
//
//   - a MessageBird access key (a live key, or test_…) at the legacy REST
//     API, https://rest.messagebird.com;
//   - a platform key bk_<region>_<secret> at the platform API of its
//     region, https://<region>.platform.bird.com, and at no other.
//
// Keys are told apart by their form, as Bird's Go SDK does: bk_ and a
// region of two letters and a digit or more.

// legacyHost is the host of the legacy REST API.
const legacyHost = "rest.messagebird.com"

var regionForm = regexp.MustCompile(`^[a-z]{2}[0-9]+$`)

// platformRegion returns the region of a platform key, or "" for any key
// that is not one.
func platformRegion(key string) string {
	rest, ok := strings.CutPrefix(key, "bk_")
	if !ok {
		return ""
	}
	region, secret, ok := strings.Cut(rest, "_")
	if !ok || secret == "" || !regionForm.MatchString(region) {
		return ""
	}
	return region
}

// defaultEndpoint is the API of a key of region ("" for an access key).
func defaultEndpoint(region string) string {
	if region == "" {
		return mbapi.Endpoint
	}
	return platformEndpoint(region)
}

func platformEndpoint(region string) string {
	return "https://" + region + ".platform.bird.com"
}

// checkKey refuses a key that no API this sender speaks takes. Its errors
// never quote the key.
func checkKey(key, region string) error {
	switch {
	case strings.HasPrefix(key, "bk_") && region == "":
		return errors.New("starts with bk_ but is not of the form bk_<region>_<secret>, with a region " +
			"such as eu1 or us1: copy the whole key as Bird shows it")
	case strings.HasPrefix(key, "bird_live_"), strings.HasPrefix(key, "bird_test_"):
		return errors.New("a bird_live_ or bird_test_ key, as some of Bird's pages show, is not one that " +
			"Bird's Go SDK sends: use a Bird platform key bk_<region>_… or a MessageBird access key")
	}
	return nil
}

// checkHost refuses an endpoint e, of host host, that is one of Bird's own
// hosts but not the one that serves keys of region ("" for an access
// key): such a request could only be refused with 401 or 421.
func checkHost(e, host, region string) error {
	platformHost := host == "platform.bird.com" || strings.HasSuffix(host, ".platform.bird.com")
	switch {
	case host == legacyHost && region != "":
		return fmt.Errorf("%s is MessageBird's legacy REST API, which refuses Bird platform keys: "+
			"a bk_%s_… key goes to %s (leave endpoint out)", e, region, platformEndpoint(region))
	case platformHost && region == "":
		return fmt.Errorf("%s is Bird's platform API, which takes only keys of the form bk_<region>_…: "+
			"a MessageBird access key goes to %s (leave endpoint out)", e, mbapi.Endpoint)
	case platformHost && host != region+".platform.bird.com":
		return fmt.Errorf("%s is not the host of region %s: a bk_%s_… key goes to %s (leave endpoint out)",
			e, region, region, platformEndpoint(region))
	}
	return nil
}
