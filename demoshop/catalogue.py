"""Deterministic product catalogue of the demo shop, and its ground truth.

Pure Python (no Twisted).  Product ``i`` (0 = newest) depends only on the
seed and ``i``: a master ``random.Random(seed)`` draws one 64-bit seed per
product, in order, so a bigger shop with the same seed contains the smaller
one's products at the same indices.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import random
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

PER_PAGE = 12

#: Every field of a product, in page order (title first, description last).
FIELDS: tuple[str, ...] = (
    "title",
    "manufacturer",
    "model",
    "device_type",
    "certificate_id",
    "certification_date",
    "software_version",
    "hardware_version",
    "firmware_version",
    "vid",
    "pid",
    "family_sku",
    "family_variant_sku",
    "family_id",
    "tis_trp_tested",
    "specification_version",
    "transport_interface",
    "primary_device_type_id",
    "application_categories",
    "compliance_document_url",
    "program_type",
    "description",
)
REQUIRED_FIELDS = frozenset(
    {"title", "manufacturer", "device_type", "certificate_id", "certification_date", "vid"}
)
#: Optional field -> probability that an ordinary product lacks it.
OPTIONAL_ABSENCE: dict[str, float] = {
    "model": 0.10,
    "software_version": 0.15,
    "hardware_version": 0.20,
    "firmware_version": 0.25,
    "pid": 0.12,
    "family_sku": 0.20,
    "family_variant_sku": 0.25,
    "family_id": 0.22,
    "tis_trp_tested": 0.18,
    "specification_version": 0.10,
    "transport_interface": 0.10,
    "primary_device_type_id": 0.15,
    "application_categories": 0.10,
    "compliance_document_url": 0.20,
    "program_type": 0.12,
    "description": 0.15,
}
QUIRKS: tuple[str, ...] = ("missing_optional", "whitespace_entities", "charset_cp1252", "markup_description")
REJECT_FIELDS: tuple[str, ...] = ("certificate_id", "certification_date")
QUIRK_RATE = 0.05
REJECT_RATE = 0.02
#: Every quirk and reject kind is forced into products ``0..FORCE_WINDOW-1``.
FORCE_WINDOW = 100
_FORCE_AT = {"missing_optional": 11, "whitespace_entities": 23, "charset_cp1252": 37, "markup_description": 49}
_REJECT_CANDIDATES = (61, 83, 71, 93, 67, 89, 59, 97)

NEWEST_DATE = dt.date(2026, 10, 30)
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
#: (first day of a Matter specification version, version)
SPEC_VERSIONS = (
    (dt.date(2024, 11, 1), "1.4"),
    (dt.date(2024, 5, 1), "1.3"),
    (dt.date(2023, 10, 1), "1.2"),
    (dt.date(2023, 5, 1), "1.1"),
)
COMPLIANCE_URL = "https://csa-iot.org/wp-content/uploads/compliance/{slug}.pdf"


@dataclass(frozen=True, slots=True)
class Vendor:
    """A manufacturer: display name, brand used in titles, vendor ID, SKU code."""

    name: str
    brand: str
    vid: int
    code: str
    categories: tuple[str, ...]
    weight: int
    european: bool = False


@dataclass(frozen=True, slots=True)
class DeviceType:
    """A Matter device type and the products made of it."""

    name: str
    type_id: int
    category: str
    nouns: tuple[str, ...]


# fmt: off
VENDORS: tuple[Vendor, ...] = (
    Vendor("Acme Inc", "Acme", 0x131B, "ACM", ("Lighting", "Energy", "Sensors"), 40),
    Vendor("Brightwave Lighting Co., Ltd.", "Brightwave", 0x1217, "BRW", ("Lighting",), 55),
    Vendor("Lumora Technologies", "Lumora", 0x1338, "LUM", ("Lighting", "Entertainment"), 30),
    Vendor("Nordhaus Elektro GmbH", "Nordhaus", 0x1402, "NHE", ("Energy", "Climate", "Lighting"), 18, True),
    Vendor("Société Générale Électronique", "SGE", 0x1199, "SGE", ("Security", "Sensors", "Energy"), 14, True),
    Vendor("Hart & Cole Home", "Hart & Cole", 0x14A1, "HCH", ("Lighting", "Climate"), 12),
    Vendor("Zürich Home Systems AG", "ZHS", 0x13C7, "ZHS", ("Bridges", "Sensors", "Climate"), 10, True),
    Vendor("Müller Lichttechnik GmbH", "Müller", 0x1521, "MLT", ("Lighting",), 16, True),
    Vendor("Nørdlys Design ApS", "Nørdlys", 0x15B4, "NDL", ("Lighting", "Entertainment"), 8, True),
    Vendor("Kestrel Smart Living", "Kestrel", 0x1166, "KSL", ("Security", "Sensors", "Lighting"), 22),
    Vendor("Pinecone Labs", "Pinecone", 0x1282, "PCL", ("Sensors", "Bridges"), 15),
    Vendor("Orbital Devices Ltd", "Orbital", 0x12D9, "ORB", ("Energy", "Lighting"), 9),
    Vendor("Shenzhen Brightstar Electronics Co., Ltd.", "Brightstar", 0x1391, "BSE", ("Lighting", "Energy"), 45),
    Vendor("Hangzhou Yunhe Smart Technology Co., Ltd.", "Yunhe", 0x1407, "YHS", ("Energy", "Sensors", "Lighting"), 35),
    Vendor("Tidewater Controls", "Tidewater", 0x1311, "TWC", ("Climate", "Energy"), 11),
    Vendor("Quillon Security", "Quillon", 0x1263, "QSC", ("Security",), 13),
    Vendor("Vireo Climate Systems", "Vireo", 0x1480, "VCS", ("Climate",), 12),
    Vendor("Cobalt Energy Solutions", "Cobalt", 0x1539, "CES", ("Energy",), 10),
    Vendor("Fjordline AS", "Fjordline", 0x1612, "FJL", ("Climate", "Sensors"), 6, True),
    Vendor("Maple & Birch Appliances", "Maple & Birch", 0x1655, "MBA", ("Appliances",), 9),
    Vendor("Sakura Denki K.K.", "Sakura", 0x1107, "SKD", ("Appliances", "Climate", "Lighting"), 12),
    Vendor("Helios Semiconductor", "Helios", 0x1037, "HLS", ("Lighting", "Sensors"), 7),
    Vendor("O'Brien Electric", "O'Brien", 0x1588, "OBE", ("Energy", "Lighting"), 8),
    Vendor("Aurelia Audio", "Aurelia", 0x16A0, "AUR", ("Entertainment",), 7),
    Vendor("Greystone Networks", "Greystone", 0x1234, "GSN", ("Bridges",), 9),
    Vendor("Casa Inteligente S.L.", "Casa", 0x1674, "CIS", ("Lighting", "Climate"), 6, True),
    Vendor("Domotique Lumière SARL", "Lumière", 0x16C2, "DLS", ("Lighting", "Security"), 7, True),
    Vendor("Blue Heron Sensors", "Blue Heron", 0x1701, "BHS", ("Sensors",), 10),
    Vendor("Verdant Home", "Verdant", 0x1723, "VRD", ("Climate", "Sensors", "Energy"), 8),
    Vendor("Ironbark Locks Pty Ltd", "Ironbark", 0x1745, "IBL", ("Security",), 9),
    Vendor("Polaris Smart Home", "Polaris", 0x1767, "PSH", ("Security", "Bridges", "Lighting"), 14),
    Vendor("Sunfield Solar", "Sunfield", 0x1789, "SFS", ("Energy",), 5),
    Vendor("Meridian Appliances", "Meridian", 0x17AB, "MRD", ("Appliances",), 11),
    Vendor("Kaleido Lighting", "Kaleido", 0x17CD, "KAL", ("Lighting",), 20),
    Vendor("Redwood Thermal", "Redwood", 0x17EF, "RWT", ("Climate",), 6),
    Vendor("Tessera Bridges Inc.", "Tessera", 0x1811, "TBI", ("Bridges",), 5),
    Vendor("Clearpath Entertainment", "Clearpath", 0x1833, "CPE", ("Entertainment",), 6),
)

DEVICE_TYPES: tuple[DeviceType, ...] = (
    DeviceType("Extended Color Light", 0x010D, "Lighting",
               ("Smart Bulb A19", "Smart Bulb BR30", "Smart Bulb GU10", "Color Light Strip", "Smart Bulb E27",
                "Color Downlight", "Gradient Lightstrip")),
    DeviceType("Color Temperature Light", 0x010C, "Lighting",
               ("Tunable White Bulb", "White Ambiance Bulb", "Ceiling Light", "Panel Light")),
    DeviceType("Dimmable Light", 0x0101, "Lighting", ("Dimmable Bulb", "Filament Bulb ST64", "Candle Bulb E14")),
    DeviceType("On/Off Light", 0x0100, "Lighting", ("Outdoor Spotlight", "Night Light", "Garden Light")),
    DeviceType("Dimmer Switch", 0x0104, "Lighting", ("In-Wall Dimmer", "Smart Dimmer Switch", "Rotary Dimmer")),
    DeviceType("Smart Plug", 0x010A, "Energy",
               ("Smart Plug Mini", "Outdoor Smart Plug", "Smart Plug with Energy Monitoring", "Smart Power Strip")),
    DeviceType("Electrical Sensor", 0x0510, "Energy", ("Energy Meter", "Smart Meter Clamp")),
    DeviceType("EVSE", 0x050C, "Energy", ("EV Charger 11 kW", "Wallbox Charger")),
    DeviceType("Solar Power", 0x0017, "Energy", ("Solar Inverter", "Hybrid Inverter")),
    DeviceType("Door Lock", 0x000A, "Security", ("Smart Deadbolt", "Smart Lock Pro", "Keypad Door Lock", "Lever Lock")),
    DeviceType("Smoke CO Alarm", 0x0076, "Security", ("Smoke & CO Alarm", "Smoke Detector")),
    DeviceType("Contact Sensor", 0x0015, "Sensors", ("Door & Window Sensor", "Contact Sensor", "Mini Contact Sensor")),
    DeviceType("Occupancy Sensor", 0x0107, "Sensors", ("Motion Sensor", "Presence Sensor", "Motion Sensor Outdoor")),
    DeviceType("Temperature Sensor", 0x0302, "Sensors",
               ("Temperature & Humidity Sensor", "Room Sensor", "Outdoor Weather Sensor")),
    DeviceType("Water Leak Detector", 0x0043, "Sensors", ("Water Leak Sensor", "Flood Detector")),
    DeviceType("Thermostat", 0x0301, "Climate", ("Smart Thermostat", "Thermostat Pro", "Radiator Thermostat")),
    DeviceType("Window Covering", 0x0202, "Climate",
               ("Roller Blind Motor", "Smart Curtain Driver", "Shade Controller")),
    DeviceType("Fan", 0x002B, "Climate", ("Ceiling Fan", "Tower Fan")),
    DeviceType("Air Purifier", 0x002D, "Climate", ("Air Purifier 300", "HEPA Air Purifier")),
    DeviceType("Room Air Conditioner", 0x0072, "Climate", ("Window Air Conditioner", "Mini-Split AC")),
    DeviceType("Heat Pump", 0x0309, "Climate", ("Air-to-Water Heat Pump",)),
    DeviceType("Bridge", 0x000E, "Bridges", ("Smart Bridge", "Home Hub", "Zigbee Bridge", "Matter Gateway")),
    DeviceType("Robotic Vacuum Cleaner", 0x0074, "Appliances", ("Robot Vacuum S8", "Robot Vacuum & Mop")),
    DeviceType("Refrigerator", 0x0070, "Appliances", ("French Door Refrigerator", "Smart Fridge")),
    DeviceType("Dishwasher", 0x0075, "Appliances", ("Dishwasher 60 cm",)),
    DeviceType("Laundry Washer", 0x0073, "Appliances", ("Front Load Washer",)),
    DeviceType("Speaker", 0x0022, "Entertainment", ("Smart Speaker", "Soundbar")),
    DeviceType("Casting Video Player", 0x0023, "Entertainment", ("Streaming Stick 4K", "Media Player")),
)
# fmt: on

CATEGORIES = ("Lighting", "Sensors", "Security", "Climate", "Energy", "Appliances", "Bridges", "Entertainment")
_TYPES_BY_CATEGORY = {c: tuple(t for t in DEVICE_TYPES if t.category == c) for c in CATEGORIES}
_RELATED = {
    "Lighting": ("Energy", "Entertainment"),
    "Sensors": ("Security", "Climate"),
    "Security": ("Sensors",),
    "Climate": ("Energy", "Sensors"),
    "Energy": ("Climate",),
    "Appliances": ("Energy",),
    "Bridges": ("Lighting", "Sensors", "Security"),
    "Entertainment": ("Lighting",),
}
#: category -> ((transports, weight), ...)
_TRANSPORTS = {
    "Lighting": ((("Thread",), 40), (("Wi-Fi",), 40), (("Thread", "Wi-Fi"), 15), (("Ethernet",), 5)),
    "Sensors": ((("Thread",), 80), (("Wi-Fi",), 20)),
    "Security": ((("Thread",), 55), (("Wi-Fi",), 30), (("Thread", "Wi-Fi"), 15)),
    "Climate": ((("Wi-Fi",), 50), (("Thread",), 35), (("Thread", "Wi-Fi"), 15)),
    "Energy": ((("Wi-Fi",), 55), (("Thread",), 30), (("Ethernet", "Wi-Fi"), 15)),
    "Appliances": ((("Wi-Fi",), 85), (("Ethernet", "Wi-Fi"), 15)),
    "Bridges": ((("Ethernet",), 45), (("Ethernet", "Wi-Fi"), 30), (("Wi-Fi",), 15), (("Ethernet", "Thread"), 10)),
    "Entertainment": ((("Wi-Fi",), 60), (("Ethernet", "Wi-Fi"), 40)),
}
_VARIANTS = ("Pro", "Mini", "Plus", "2nd Gen", "Color", "White", "Max", "Lite", "(EU)", "(US)", "Gen 3", "S")
_EURO_VARIANTS = ("– Édition Zürich", "– Crème", "– Noir Élégance", "– Weiß", "– Café")
_SKU_REGIONS = ("EU", "US", "UK", "AU", "JP", "WH", "BK", "GR")

#: How descriptions name a device type when its lowercase name reads badly.
_KIND_NAMES = {
    "Smoke CO Alarm": "smoke and CO alarm",
    "EVSE": "EV charger",
    "Solar Power": "solar inverter",
    "On/Off Light": "light",
    "Electrical Sensor": "energy meter",
}
_ADJECTIVES = ("a compact", "an energy-efficient", "a versatile", "a reliable", "an easy-to-install", "a stylish",
               "a low-power")
_INTRO = (
    "The {title} is {adj} {kind} certified for Matter.",
    "Meet the {title}: {adj} {kind} from {brand}.",
    "Designed by {maker}, the {title} is {adj} {kind} for every room.",
)
_GENERAL = (
    "It connects over {transport} and works with every Matter controller.",
    "Setup takes seconds: scan the QR code with your favourite smart home app.",
    "All control happens locally, so it keeps working when the internet does not.",
    "Firmware updates are delivered over the air.",
    "Add it to scenes & automations alongside devices from other brands.",
    "Multi-admin support lets several ecosystems control it at the same time.",
)
_BY_CATEGORY = {
    "Lighting": ("Dim it from your phone, by voice or with a wall switch.",
                 "Schedules and smooth fades make mornings easier.",
                 "Rated for 25,000 hours of use."),
    "Sensors": ("The battery lasts up to two years.", "Reports changes in under a second.",
                "Mount it with the included adhesive pad."),
    "Security": ("Unlock with your phone, a PIN code or a key.", "Get notified when someone arrives.",
                 "Tamper alerts keep you informed."),
    "Climate": ("Create heating & cooling schedules that save energy.", "Works with most 24 V HVAC systems.",
                "Eco mode learns your routine."),
    "Energy": ("Track consumption in real time.", "Supports loads up to 16 A.",
               "See your home's energy use at a glance."),
    "Appliances": ("Start and monitor cycles remotely.", "Receive a notification when the cycle ends.",
                   "Energy-saving programs reduce running costs."),
    "Bridges": ("Brings up to 64 existing devices into Matter.", "Connect it to your router with the supplied cable.",
                "Acts as a Thread border router."),
    "Entertainment": ("Stream music from any app.", "Group it with other speakers for whole-home audio.",
                      "Supports 4K HDR content."),
}
_EURO_SENTENCES = (
    "It’s designed in Zürich – and built to last.",
    "Crème finish, café-grade materials – très élégant.",
    "Engineered by Société Générale Électronique’s team in Besançon.",
)

_TAG_RE = re.compile(r"<[^>]*>")
_SLUG_RE = re.compile(r"[^a-z0-9]+")


def normalise_text(text: str) -> str:
    """Collapse every whitespace run (NBSP included) to one space and strip."""
    return " ".join(text.split())


def html_to_text(fragment: str) -> str:
    """The normalised text of an HTML fragment: tags dropped, entities decoded."""
    return normalise_text(html.unescape(_TAG_RE.sub("", fragment)))


def slugify(text: str) -> str:
    """Lowercase ASCII, hyphen-separated form of ``text``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _SLUG_RE.sub("-", ascii_text.lower()).strip("-")


def format_date(day: dt.date) -> str:
    """``%B %d, %Y`` without depending on the locale: ``March 05, 2024``."""
    return f"{MONTHS[day.month - 1]} {day.day:02d}, {day.year}"


def certification_day(index: int) -> dt.date:
    """Certification date of product ``index``: about 3.5 products a day, newest first."""
    return NEWEST_DATE - dt.timedelta(days=index * 2 // 7)


@dataclass(slots=True)
class Product:
    """One product: its truth ``fields`` plus what the pages need to show it."""

    index: int
    slug: str
    quirks: tuple[str, ...]
    reject_field: str | None
    fields: dict[str, Any]
    #: Text of the Certification Date row ("TBD" on a rejected page).
    date_text: str
    #: Inner HTML of ``div.entry-description``, or None.
    description_html: str | None
    #: Seed of the whitespace/entity noise of ``whitespace_entities`` pages.
    noise_seed: int
    #: 404 or 410 when the product is permanently gone (its detail page always answers that status).
    gone_status: int | None = None
    #: The dead host its list page links it on (absolute URL), or None for a normal relative link.
    dead_host: str | None = None

    @property
    def path(self) -> str:
        return f"/csa_product/{self.slug}/"

    @property
    def list_page(self) -> int:
        return self.index // PER_PAGE + 1

    @property
    def list_position(self) -> int:
        return self.index % PER_PAGE + 1

    @property
    def charset(self) -> str:
        return "windows-1252" if "charset_cp1252" in self.quirks else "utf-8"

    @property
    def dead_reason(self) -> str | None:
        """Why a correct crawl dead-letters this product (its page can never be fetched), or None."""
        if self.dead_host is not None:
            return "circuit_open"
        if self.gone_status is not None:
            return f"http_{self.gone_status}"
        return None

    def truth(self) -> dict[str, Any]:
        """The ground-truth line of this product.

        ``expected`` is ``saved``, ``rejected`` or ``dead_letter``; a product whose page
        can never be fetched (gone, or linked on the dead host) is a dead letter even when
        its page is invalid (``reject_field`` still describes the page).  ``host`` is the
        dead host the list page links the product on (``http://<host>:<dead port><path>``),
        None for a normal link relative to the shop.
        """
        dead_reason = self.dead_reason
        return {
            "key": self.slug,
            "path": self.path,
            "host": self.dead_host,
            "list_page": self.list_page,
            "list_position": self.list_position,
            "expected": "dead_letter" if dead_reason else "rejected" if self.reject_field else "saved",
            "dead_reason": dead_reason,
            "reject_field": self.reject_field,
            "quirks": list(self.quirks),
            "fields": {k: list(v) if isinstance(v, list) else v for k, v in self.fields.items()},
        }


def _draw_flags(rng: random.Random) -> tuple[set[str], str | None]:
    """The first draws of a product's generator: its quirks and reject kind."""
    quirks = {q for q in QUIRKS if rng.random() < QUIRK_RATE}
    r = rng.random()
    reject = REJECT_FIELDS[0] if r < REJECT_RATE else REJECT_FIELDS[1] if r < 2 * REJECT_RATE else None
    return quirks, reject


def _weighted(rng: random.Random, options: tuple[tuple[Any, int], ...]) -> Any:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


_VENDOR_WEIGHTS = [v.weight for v in VENDORS]
_EURO_VENDORS = tuple(v for v in VENDORS if v.european)
_ENTITY_VENDORS = tuple(v for v in VENDORS if "&" in v.name or "'" in v.name)


def seeded_unit(seed: int, *parts: object) -> float:
    """A stable uniform draw in [0, 1) from ``seed`` and ``parts`` (blake2b; not Python's ``hash``)."""
    key = "\x1f".join(map(str, (seed, *parts))).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


DEFAULT_DEAD_HOST = "127.0.0.2"


class Catalogue:
    """``products`` products generated from ``seed``; newest (index 0) first.

    ``product(i)`` builds product ``i`` on demand (LRU-cached), ``pages`` is
    the number of list pages, ``truth()`` yields the ground-truth lines.

    ``gone_share`` of the products are permanently gone (detail page 404 for an
    even index, 410 for an odd one) and ``dead_share`` are linked on
    ``dead_host`` (see :class:`Product`).  Both are drawn per index from the seed
    with a hash, independently of each other, of the product generator and of
    ``products``; a product drawn for both is dead (it is never fetched from the shop).
    """

    def __init__(
        self,
        products: int,
        seed: int,
        gone_share: float = 0.0,
        dead_share: float = 0.0,
        dead_host: str = DEFAULT_DEAD_HOST,
    ) -> None:
        if products < 0:
            raise ValueError("products must be >= 0")
        for name, share in (("gone_share", gone_share), ("dead_share", dead_share)):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        self.products = products
        self.seed = seed
        self.gone_share = gone_share
        self.dead_share = dead_share
        self.dead_host = dead_host
        self.pages = max(1, -(-products // PER_PAGE))
        master = random.Random(seed)
        self._seeds = [master.getrandbits(64) for _ in range(max(products, FORCE_WINDOW))]
        self._forced = self._force_window()
        self.product = lru_cache(maxsize=4096)(self._make_product)

    def __len__(self) -> int:
        return self.products

    def _force_window(self) -> dict[int, tuple[set[str], str | None]]:
        """Flags of the products forced to carry a quirk/reject absent from the window."""
        flags = [_draw_flags(random.Random(s)) for s in self._seeds[:FORCE_WINDOW]]
        forced: dict[int, tuple[set[str], str | None]] = {}
        for quirk, index in _FORCE_AT.items():
            if not any(quirk in q for q, _ in flags):
                quirks, reject = forced.get(index, flags[index])
                forced[index] = (quirks | {quirk}, reject)
        rejects = {r for _, r in flags if r}
        for kind in REJECT_FIELDS:
            if kind in rejects:
                continue
            for index in _REJECT_CANDIDATES:
                quirks, reject = forced.get(index, flags[index])
                if reject is None:
                    forced[index] = (quirks, kind)
                    break
        return forced

    def page_range(self, page: int) -> range:
        """Indices of the products on list page ``page`` (1-based)."""
        start = (page - 1) * PER_PAGE
        return range(start, min(start + PER_PAGE, self.products))

    def index_of_slug(self, slug: str) -> int | None:
        """Index of the product with this slug, or None."""
        _, _, serial = slug.rpartition("-")
        if not serial.isdigit() or not serial.isascii():
            return None
        index = int(serial) - 1
        if 0 <= index < self.products and self.product(index).slug == slug:
            return index
        return None

    def is_dead(self, index: int) -> bool:
        """Whether product ``index`` is linked on the dead host."""
        return self.dead_share > 0 and seeded_unit(self.seed, "dead", index) < self.dead_share

    def gone_status(self, index: int) -> int | None:
        """404/410 when product ``index`` is permanently gone (and not dead), else None."""
        if self.gone_share > 0 and seeded_unit(self.seed, "gone", index) < self.gone_share:
            if not self.is_dead(index):
                return 404 if index % 2 == 0 else 410
        return None

    def gone_paths(self) -> dict[str, int]:
        """Detail path -> 404/410 of every gone product."""
        if self.gone_share <= 0:
            return {}
        paths = {}
        for index in range(self.products):
            status = self.gone_status(index)
            if status is not None:
                paths[self.product(index).path] = status
        return paths

    def truth(self) -> Iterator[dict[str, Any]]:
        """Ground truth, one dict per product, newest first."""
        for index in range(self.products):
            yield self.product(index).truth()

    def _make_product(self, index: int) -> Product:
        if not 0 <= index < self.products:
            raise IndexError(index)
        rng = random.Random(self._seeds[index])
        quirk_set, reject = _draw_flags(rng)
        if index in self._forced:
            quirk_set, reject = self._forced[index]
        quirks = tuple(q for q in QUIRKS if q in quirk_set)
        euro = "charset_cp1252" in quirk_set

        if euro:
            vendor = rng.choice(_EURO_VENDORS)
        elif "whitespace_entities" in quirk_set and rng.random() < 0.5:
            vendor = rng.choice(_ENTITY_VENDORS)
        else:
            vendor = rng.choices(VENDORS, weights=_VENDOR_WEIGHTS)[0]
        category = rng.choice(vendor.categories)
        dtype = rng.choice(_TYPES_BY_CATEGORY[category])
        noun = rng.choice(dtype.nouns)
        title = f"{vendor.brand} {noun}"
        if euro:
            title += " " + rng.choice(_EURO_VARIANTS)
        elif rng.random() < 0.5:
            title += " " + rng.choice(_VARIANTS)
        slug = f"{slugify(title)}-{index + 1:05d}"
        day = certification_day(index)
        yy = day.year % 100
        initials = "".join(w[0] for w in noun.split() if w[0].isalnum()).upper()
        model = f"{vendor.code}-{initials}{rng.randint(1, 9)}{rng.choice('ABCEGMPSX')}{rng.randint(0, 99):02d}"
        family_sku = f"{vendor.code}-{initials}{rng.randint(10, 99)}"
        transports = _weighted(rng, _TRANSPORTS[category])
        categories = [category]
        if rng.random() < 0.25:
            categories.append(rng.choice(_RELATED[category]))
        specs = [v for start, v in SPEC_VERSIONS if day >= start] + ["1.0"]
        spec = specs[0] if rng.random() < 0.6 else rng.choice(specs)
        fw = f"{rng.randint(1, 4)}.{rng.randint(0, 9)}.{rng.randint(0, 20)}"
        if rng.random() < 0.2:
            fw += rng.choice(("-rc1", "-rc2", "-beta1", "-beta3", "-hotfix"))
        fields: dict[str, Any] = {
            "title": title,
            "manufacturer": vendor.name,
            "model": model,
            "device_type": dtype.name,
            "certificate_id": f"CSA{yy:02d}{day.timetuple().tm_yday:03d}MAT{40000 + index:05d}-{yy:02d}",
            "certification_date": day.isoformat(),
            "software_version": f"{rng.randint(1, 5)}.{rng.randint(0, 12)}.{rng.randint(0, 30)}",
            "hardware_version": rng.choice(("1", "2", "3", "1.0", "1.1", "2.0", "A", "rev3")),
            "firmware_version": fw,
            "vid": vendor.vid,
            "pid": rng.randint(1, 0x8FFF),
            "family_sku": family_sku,
            "family_variant_sku": f"{family_sku}-{rng.choice(_SKU_REGIONS)}",
            "family_id": f"{vendor.code}-FAM-{rng.randint(1, 9999):04d}",
            "tis_trp_tested": rng.random() < 0.6,
            "specification_version": spec,
            "transport_interface": list(transports),
            "primary_device_type_id": dtype.type_id,
            "application_categories": categories,
            "compliance_document_url": COMPLIANCE_URL.format(slug=slug),
            "program_type": "Matter (Zigbee Bridged)" if rng.random() < 0.05 else "Matter",
            "description": None,
        }
        kind = _KIND_NAMES.get(dtype.name, dtype.name.lower())
        params = {
            "title": title,
            "brand": vendor.brand,
            "maker": vendor.name,
            "kind": kind,
            "adj": rng.choice(_ADJECTIVES),
            "transport": " and ".join(transports),
        }
        if "markup_description" in quirk_set:
            description_html = _markup_description(rng, params, category, euro)
        else:
            description_html = _plain_description(rng, params, category, euro)

        absent = {f for f, p in OPTIONAL_ABSENCE.items() if rng.random() < p}
        if "missing_optional" in quirk_set:
            absent.update(rng.sample(sorted(OPTIONAL_ABSENCE), rng.randint(6, 10)))
        if euro:
            absent.discard("description")
        if "markup_description" in quirk_set:
            absent.discard("description")
        if reject:
            absent.add(reject)
        if "description" not in absent:
            fields["description"] = html_to_text(description_html)
        for name in absent:
            fields[name] = None
        date_text = "TBD" if reject == "certification_date" else format_date(day)
        return Product(
            index=index,
            slug=slug,
            quirks=quirks,
            reject_field=reject,
            fields=fields,
            date_text=date_text,
            description_html=None if "description" in absent else description_html,
            noise_seed=rng.getrandbits(32),
            gone_status=self.gone_status(index),
            dead_host=self.dead_host if self.is_dead(index) else None,
        )


def _sentences(rng: random.Random, params: dict[str, str], category: str, count: int) -> list[str]:
    pool = _GENERAL + _BY_CATEGORY[category]
    return [s.format(**params) for s in rng.sample(pool, count)]


def _plain_description(rng: random.Random, params: dict[str, str], category: str, euro: bool) -> str:
    sentences = [rng.choice(_INTRO).format(**params)]
    if euro:
        sentences.append(rng.choice(_EURO_SENTENCES))
    sentences += _sentences(rng, params, category, rng.randint(0, 6))
    paragraphs = []
    while sentences:
        size = rng.randint(1, 3)
        paragraphs.append(" ".join(sentences[:size]))
        del sentences[:size]
    return "\n".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)


def _markup_description(rng: random.Random, params: dict[str, str], category: str, euro: bool) -> str:
    esc = html.escape
    title, transport = esc(params["title"]), esc(params["transport"])
    bullets = _sentences(rng, params, category, 3)
    euro_text = " " + esc(rng.choice(_EURO_SENTENCES)) if euro else ""
    return "\n".join(
        (
            f"<p>The <b>{title}</b> is <em>{esc(params['adj'])}</em> {esc(params['kind'])}"
            f" &amp; talks <b>{transport}</b>.{euro_text}</p>",
            "<ul>",
            *(f"  <li>{esc(b)}</li>" for b in bullets),
            "</ul>",
            '<p>Read the <a href="https://csa-iot.org/all-solutions/matter/">Matter overview</a> for details.<br>',
            f"Questions? Contact <em>{esc(params['brand'])}</em> support.</p>",
        )
    )
