package sim

import "time"

// product is one auto-renewable subscription product.
type product struct {
	ID    string
	Group *group
	// Level is the service level within the group, 1 = highest, as in App
	// Store Connect: moving to a lower number is an upgrade.
	Level int
	// Months/Days: the billing period (exactly one is non-zero).
	Months, Days int
	// Price in milliunits of USD.
	Price int64
	// Intro is the introductory offer new customers may get.
	Intro introOffer
}

// introOffer is an introductory offer (offerType 1).
type introOffer struct {
	DiscountType string // FREE_TRIAL, PAY_AS_YOU_GO
	Period       string // ISO 8601 duration, offerPeriod
	Days         int    // length of the discounted transaction
	Price        int64  // milliunits
}

// group is a subscription group.
type group struct {
	ID       string
	Products []*product // ordered by Level
}

// end returns the expiry of a period of p that starts at t.
func (p *product) end(t time.Time) time.Time {
	if p.Months > 0 {
		return t.AddDate(0, p.Months, 0)
	}
	return t.Add(time.Duration(p.Days) * 24 * time.Hour)
}

// start is the inverse of end: the start of the period of p ending at t.
func (p *product) start(t time.Time) time.Time {
	if p.Months > 0 {
		return t.AddDate(0, -p.Months, 0)
	}
	return t.Add(-time.Duration(p.Days) * 24 * time.Hour)
}

// length is the nominal period length.
func (p *product) length() time.Duration {
	if p.Months > 0 {
		return time.Duration(p.Months) * 30 * 24 * time.Hour
	}
	return time.Duration(p.Days) * 24 * time.Hour
}

// gracePeriod is the billing grace period Apple grants for p's period.
func (p *product) gracePeriod() time.Duration {
	if p.Months == 0 && p.Days <= 7 {
		return 6 * 24 * time.Hour
	}
	return 16 * 24 * time.Hour
}

// higher returns the product one level above p (an upgrade), or nil.
func (p *product) higher() *product {
	if p.Level <= 1 {
		return nil
	}
	return p.Group.Products[p.Level-2]
}

// lower returns the product one level below p (a downgrade), or nil.
func (p *product) lower() *product {
	if p.Level >= len(p.Group.Products) {
		return nil
	}
	return p.Group.Products[p.Level]
}

// catalog is the simulated app's product catalog: two groups, as the brief
// of a typical subscription app: a main plan with three periods and an
// add-on with two.
type catalog struct {
	Groups   []*group
	products map[string]*product
}

// Product identifiers of the simulated catalog.
const (
	GroupPremium          = "21000001"
	GroupCloud            = "21000002"
	ProductPremiumYearly  = "com.example.storesync.premium.yearly"
	ProductPremiumMonthly = "com.example.storesync.premium.monthly"
	ProductPremiumWeekly  = "com.example.storesync.premium.weekly"
	ProductCloudYearly    = "com.example.storesync.cloud.yearly"
	ProductCloudMonthly   = "com.example.storesync.cloud.monthly"
)

func newCatalog() *catalog {
	premium := &group{ID: GroupPremium}
	premium.Products = []*product{
		{ID: ProductPremiumYearly, Group: premium, Level: 1, Months: 12, Price: 59990,
			Intro: introOffer{DiscountType: "FREE_TRIAL", Period: "P2W", Days: 14}},
		{ID: ProductPremiumMonthly, Group: premium, Level: 2, Months: 1, Price: 6990,
			Intro: introOffer{DiscountType: "FREE_TRIAL", Period: "P1W", Days: 7}},
		{ID: ProductPremiumWeekly, Group: premium, Level: 3, Days: 7, Price: 1990,
			Intro: introOffer{DiscountType: "FREE_TRIAL", Period: "P3D", Days: 3}},
	}
	cloud := &group{ID: GroupCloud}
	cloud.Products = []*product{
		{ID: ProductCloudYearly, Group: cloud, Level: 1, Months: 12, Price: 29990,
			Intro: introOffer{DiscountType: "FREE_TRIAL", Period: "P1M", Days: 30}},
		{ID: ProductCloudMonthly, Group: cloud, Level: 2, Months: 1, Price: 2990,
			Intro: introOffer{DiscountType: "PAY_AS_YOU_GO", Period: "P1M", Days: 30, Price: 990}},
	}
	c := &catalog{Groups: []*group{premium, cloud}, products: map[string]*product{}}
	for _, g := range c.Groups {
		for _, p := range g.Products {
			c.products[p.ID] = p
		}
	}
	return c
}

// storefront is a country an account buys in.
type storefront struct {
	Code, ID, Currency string
	// PriceFactor scales USD milliunit prices into the local currency.
	PriceFactor float64
}

var storefronts = []storefront{
	{"USA", "143441", "USD", 1},
	{"USA", "143441", "USD", 1},
	{"USA", "143441", "USD", 1},
	{"GBR", "143444", "GBP", 0.8},
	{"DEU", "143443", "EUR", 0.95},
	{"CAN", "143455", "CAD", 1.35},
}

// localPrice converts a USD milliunit price into f's currency, rounded to
// a price point ending in 9 like App Store tiers.
func (f storefront) localPrice(usd int64) int64 {
	if usd == 0 {
		return 0
	}
	v := int64(float64(usd) * f.PriceFactor)
	return (v/100)*100 + 90
}
