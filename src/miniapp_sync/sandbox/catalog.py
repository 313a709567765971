"""The sandbox store's vocabulary: names, places, products and labels, in English and Arabic.

One fictional Salla store, "بيت القهوة" (Bait Alqahwa), the same store as examples/salla.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Final, NamedTuple

# Riyadh has kept UTC+03:00 without daylight saving since 1950, so a fixed offset is exact and
# spares the sandbox a dependency on the machine's tz database.
RIYADH: Final = timezone(timedelta(hours=3), "Asia/Riyadh")
# Generated data is dated relative to this moment (the example's API snapshot), never to the
# wall clock, so a seed always gives the same records.
SNAPSHOT: Final = datetime(2024, 5, 5, 12, 0, 0, tzinfo=RIYADH)

STORE_SLUG: Final = "bait-alqahwa"
STORE_NAME: Final = "بيت القهوة"
STORE_URL: Final = f"https://salla.sa/{STORE_SLUG}"
ADMIN_URL: Final = "https://s.salla.sa"
CDN_URL: Final = "https://cdn.salla.sa/QXbPd"
AVATARS: Final = {
    "male": "https://cdn.assets.salla.network/prod/admin/cp/assets/images/avatar_male.jpeg",
    "female": "https://cdn.assets.salla.network/prod/admin/cp/assets/images/avatar_female.jpeg",
}


class Name(NamedTuple):
    """A word in both languages: Arabic as the merchant's customers write it, and Latin."""

    ar: str
    en: str


MALE: Final = [
    Name("محمد", "Mohammed"), Name("أحمد", "Ahmed"), Name("عبدالله", "Abdullah"), Name("خالد", "Khalid"),
    Name("فهد", "Fahad"), Name("سعود", "Saud"), Name("عمر", "Omar"), Name("يوسف", "Yousef"),
    Name("فيصل", "Faisal"), Name("ناصر", "Nasser"), Name("سلطان", "Sultan"), Name("تركي", "Turki"),
    Name("ماجد", "Majed"), Name("بندر", "Bandar"), Name("إبراهيم", "Ibrahim"), Name("حمد", "Hamad"),
]  # fmt: skip
FEMALE: Final = [
    Name("نورة", "Noura"), Name("ريم", "Reem"), Name("سارة", "Sarah"), Name("لمى", "Lama"),
    Name("هيا", "Haya"), Name("منيرة", "Munira"), Name("العنود", "Alanoud"), Name("جواهر", "Jawaher"),
    Name("شهد", "Shahad"), Name("رغد", "Raghad"), Name("دانة", "Dana"), Name("مها", "Maha"),
    Name("أمل", "Amal"), Name("هند", "Hind"), Name("لطيفة", "Latifa"), Name("غادة", "Ghada"),
]  # fmt: skip
FAMILIES: Final = [
    Name("القحطاني", "Al-Qahtani"), Name("العتيبي", "Al-Otaibi"), Name("الحربي", "Al-Harbi"),
    Name("الدوسري", "Al-Dosari"), Name("الشمري", "Al-Shammari"), Name("الغامدي", "Al-Ghamdi"),
    Name("الزهراني", "Al-Zahrani"), Name("المطيري", "Al-Mutairi"), Name("السبيعي", "Al-Subaie"),
    Name("العنزي", "Al-Anazi"), Name("الشهري", "Al-Shehri"), Name("المالكي", "Al-Malki"),
    Name("التميمي", "Al-Tamimi"), Name("السهلي", "Al-Sahli"), Name("البقمي", "Al-Buqami"),
]  # fmt: skip
EMAIL_DOMAINS: Final = ["gmail.com", "hotmail.com", "outlook.com", "icloud.com", "example.com"]


class City(NamedTuple):
    """A Saudi city, its coordinates, and a district and street used in shipping addresses."""

    name: Name
    lat: float
    lng: float
    district: str
    street: str
    postal_code: str


CITIES: Final = [
    City(Name("الرياض", "Riyadh"), 24.7136, 46.6753, "الملقا", "أنس بن مالك", "13521"),
    City(Name("جدة", "Jeddah"), 21.5433, 39.1728, "الروضة", "صاري", "23434"),
    City(Name("الدمام", "Dammam"), 26.4207, 50.0888, "الفيصلية", "الملك سعود", "32272"),
    City(Name("مكة المكرمة", "Makkah"), 21.3891, 39.8579, "العزيزية", "عبدالله عريف", "24243"),
    City(Name("المدينة المنورة", "Madinah"), 24.5247, 39.5692, "قباء", "قباء", "42318"),
    City(Name("الخبر", "Khobar"), 26.2172, 50.1971, "العقربية", "الأمير تركي", "34447"),
    City(Name("الطائف", "Taif"), 21.2703, 40.4158, "شهار", "شهار", "26514"),
    City(Name("أبها", "Abha"), 18.2164, 42.5053, "المنسك", "الملك فيصل", "62521"),
    City(Name("بريدة", "Buraidah"), 26.3592, 43.9818, "الريان", "عمر بن الخطاب", "52367"),
    City(Name("تبوك", "Tabuk"), 28.3835, 36.5662, "المروج", "الأمير فهد بن سلطان", "47912"),
]
COUNTRY: Final = Name("السعودية", "Saudi Arabia")
STORE_CITY: Final = City(Name("الرياض", "Riyadh"), 24.6911, 46.6853, "العليا", "طريق الملك فهد", "12214")
STORE_ADDRESS: Final = "طريق الملك فهد، العليا، 12214، الرياض، السعودية"
COUNTRY_CODE: Final = "SA"
# Salla mobile numbers are national numbers; these prefixes are Saudi mobile ranges.
MOBILE_PREFIXES: Final = [50, 53, 54, 55, 56, 58, 59]


class Family(NamedTuple):
    """A product line: how its names and SKUs are built and what it costs."""

    key: str
    ar: str  # name template; {v} is the variant, {s} the size
    en: str
    sku: str
    type: str  # Salla product type
    price: tuple[int, int]  # regular price range in SAR, for the base size
    weight: float  # kg for the base size
    category: Name
    variants: list[Name]
    sizes: list[tuple[Name, float]]  # size label and its price / weight factor
    blurb: Name  # description sentence; {v} is the variant


_COFFEE_SIZES: Final = [(Name("250 جم", "250 g"), 0.55), (Name("500 جم", "500 g"), 1.0), (Name("1 كجم", "1 kg"), 1.8)]
_DATE_SIZES: Final = [(Name("500 جم", "500 g"), 0.6), (Name("1 كجم", "1 kg"), 1.0), (Name("3 كجم", "3 kg"), 2.6)]
_ONE: Final = [(Name("", ""), 1.0)]

FAMILIES_OF_PRODUCTS: Final = [
    Family(
        "coffee", "قهوة {v} - {s}", "{v} Coffee - {s}", "COF", "product", (55, 95), 0.5,
        Name("القهوة السعودية", "Saudi coffee"),
        [Name("خولاني سعودية", "Saudi Khawlani"), Name("هررية", "Harari"), Name("إثيوبية سيدامو", "Ethiopian Sidamo"),
         Name("كولومبية", "Colombian"), Name("برازيلية", "Brazilian"), Name("يمنية حرازي", "Yemeni Harazi"),
         Name("كينية", "Kenyan"), Name("سعودية بالهيل", "Saudi Cardamom")],
        _COFFEE_SIZES,
        Name("بن {v} بتحميص متوسط، يحمص أسبوعياً ويعبأ طازجاً.",
             "{v} beans, medium roast, roasted weekly and packed fresh."),
    ),
    Family(
        "dates", "تمر {v} فاخر - {s}", "Premium {v} Dates - {s}", "DAT", "food", (45, 120), 1.0,
        Name("التمور", "Dates"),
        [Name("سكري", "Sukkari"), Name("عجوة", "Ajwa"), Name("خلاص", "Khalas"), Name("مجدول", "Medjool"),
         Name("صقعي", "Sagai"), Name("برحي", "Barhi")],
        _DATE_SIZES,
        Name("تمر {v} من مزارع القصيم، موسم 2023، معبأ في علب محكمة.",
             "{v} dates from Qassim farms, 2023 season, in sealed boxes."),
    ),
    Family(
        "tools", "{v}", "{v}", "TLS", "product", (35, 320), 1.2,
        Name("أدوات القهوة", "Coffee tools"),
        [Name("دلة نحاسية تقليدية", "Brass Dallah - Traditional Coffee Pot"),
         Name("دلة ستانلس ستيل", "Stainless Steel Dallah"), Name("طقم فناجين 12 قطعة", "Finjan Cup Set - 12 pcs"),
         Name("ترمس قهوة 1 لتر", "Coffee Thermos 1 L"), Name("مطحنة قهوة يدوية", "Manual Coffee Grinder"),
         Name("قمع تقطير V60", "V60 Dripper"), Name("غلاية بعنق طويل", "Gooseneck Kettle"),
         Name("ميزان قهوة رقمي", "Digital Coffee Scale")],
        _ONE,
        Name("{v}، صناعة متقنة تناسب القهوة العربية.", "{v}, well made for Arabic coffee."),
    ),
    Family(
        "spices", "{v} - {s}", "{v} - {s}", "SPC", "product", (18, 140), 0.1,
        Name("البهارات", "Spices"),
        [Name("هيل حب", "Green Cardamom"), Name("زعفران نقي", "Pure Saffron"), Name("قرنفل", "Cloves"),
         Name("زنجبيل مطحون", "Ground Ginger")],
        [(Name("100 جم", "100 g"), 1.0), (Name("250 جم", "250 g"), 2.2)],
        Name("{v} منتقى بعناية لتحضير القهوة والشاي.", "{v}, hand-picked for coffee and tea."),
    ),
    Family(
        "courses", "{v}", "{v}", "CRS", "digital", (99, 299), 0.0,
        Name("الدورات", "Courses"),
        [Name("دورة تحضير القهوة المختصة", "Specialty Coffee Brewing Course"),
         Name("دليل تحميص القهوة في المنزل", "Home Roasting Guide")],
        _ONE,
        Name("{v}: محتوى رقمي يصل إلى بريدك فور الشراء.",
             "{v}: digital content sent to your email right after purchase."),
    ),
    Family(
        "workshops", "{v}", "{v}", "WRK", "service", (150, 250), 0.0,
        Name("الورش", "Workshops"),
        [Name("ورشة تذوق القهوة", "Coffee Cupping Workshop")],
        _ONE,
        Name("{v} في فرعنا بالرياض، مدتها ساعتان.", "{v} at our Riyadh branch, two hours."),
    ),
]  # fmt: skip
CATEGORY_IDS: Final = {family.key: 601049212 + 97 * n for n, family in enumerate(FAMILIES_OF_PRODUCTS)}
BRAND: Final = {"id": 1972405558, "name": STORE_NAME, "logo": None}
GRIND: Final = [Name("ناعم", "Fine"), Name("وسط", "Medium"), Name("خشن", "Coarse")]
PROMOTIONS: Final = [("عرض رمضان", 15), ("عرض نهاية الأسبوع", 10), ("تخفيضات الصيف", 20)]


class Status(NamedTuple):
    """An order status: Salla's stable slug, its labels and ids."""

    slug: str
    en: str
    ar: str
    id: int
    customized_id: int
    weight: int  # how common it is among generated orders


ORDER_STATUSES: Final = [
    Status("payment_pending", "Pending Payment", "بانتظار الدفع", 1510590484, 1041415203, 4),
    Status("under_review", "Under Review", "بإنتظار المراجعة", 566146469, 1298199462, 10),
    Status("in_progress", "In Progress", "قيد التنفيذ", 1473353380, 1298199463, 14),
    Status("delivering", "Delivering", "جاري التوصيل", 814202285, 1473353382, 5),
    Status("shipped", "Shipped", "تم الشحن", 1956875583, 1723506347, 6),
    Status("delivered", "Delivered", "تم التوصيل", 1956875584, 1723506348, 26),
    Status("completed", "Completed", "تم التنفيذ", 1298199463, 1473353381, 30),
    Status("canceled", "Canceled", "ملغي", 525144736, 1298199464, 5),
]
STATUS_BY_SLUG: Final = {status.slug: status for status in ORDER_STATUSES}
PAYMENT_METHODS: Final = ["mada", "mada", "credit_card", "credit_card", "apple_pay", "cod", "bank", "stc_pay"]
SHIPPING_COMPANIES: Final = [Name("سمسا", "SMSA"), Name("أرامكس", "Aramex"), Name("ناقل", "Naqel"), Name("سبل", "SPL")]


class Coupon(NamedTuple):
    """A discount code: percentage or a fixed SAR amount."""

    id: int
    code: str
    title: str
    type: str  # 'percentage' | 'fixed'
    amount: float


COUPONS: Final = [
    Coupon(1642087321, "WELCOME10", "خصم الترحيب", "percentage", 10),
    Coupon(1642087322, "RAMADAN15", "خصم رمضان", "percentage", 15),
    Coupon(1642087323, "SAVE20", "وفر 20 ريال", "fixed", 20),
]
TAX_RATE: Final = 0.15
USER_AGENTS: Final = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile "
    "Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
]

# English label → Arabic, for the fields Salla localises (Accept-Language, webhook bodies).
ARABIC: Final = {
    **{city.name.en: city.name.ar for city in CITIES},
    COUNTRY.en: COUNTRY.ar,
    **{status.en: status.ar for status in ORDER_STATUSES},
    **{company.en: company.ar for company in SHIPPING_COMPANIES},
}

USER: Final = {
    "id": 1771165749,
    "name": "فهد الدوسري",
    "email": "owner@example.com",
    "mobile": "+966500000001",
    "role": "user",
    "created_at": "2021-09-14 10:12:33",
}
MERCHANT: Final = {
    "username": STORE_SLUG,
    "name": STORE_NAME,
    "avatar": f"{CDN_URL}/store-logo-8a1c.png",
    "store_location": "24.6911,46.6853",
    "plan": "pro",
    "status": "active",
    "domain": STORE_URL,
    "tax_number": "310123456700003",
    "commercial_number": "1010654321",
    "created_at": "2021-09-14 10:12:33",
}
