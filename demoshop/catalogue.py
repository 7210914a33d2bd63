"""Deterministic catalogue of the demo shop, and its ground truth.

Pure Python (no Twisted).  The shop imitates csa-iot.org's product index: an
unfiltered list of every certified entry, newest first, in which the Matter
certified *products* are mixed with Zigbee products and with Matter platforms and
software components (about a quarter of all entries); only the URL filter
(``p_type[]=14`` and ``p_program_type[]=1049``) narrows it to Matter products.

Matter product ``i`` (0 = newest) depends only on the seed and ``i``: a master
``random.Random(seed)`` draws one 64-bit seed per product, in order, and the
product's vendor and the non-Matter entries listed right after it (older than it)
are drawn from blake2b hashes of (seed, i).  So a bigger shop with the same seed
contains the smaller one's products, and its non-Matter entries, at the same indices.

A catalogue may *grow* while it is served (``grow``): it is generated for
``products + grow`` Matter products, of which the oldest ``products`` are visible at
first (indices ``[grow, products + grow)``); the server adds the others at the top,
one at a time (see :class:`demoshop.pages.ShopPages`).  The truth describes the final,
fully grown catalogue.

A catalogue may show *changed* products (``change_share``): the entries of a
certified product change after it is listed (a new firmware or hardware version, a
new certified date; :data:`CHANGE_FIELDS`).  A seeded share of the saved Matter
products (drawn per index from ``change_seed``, independently of everything else)
shows new values for one to three of those fields; the same catalogue without
``change_share`` shows the values before.  Their truth lines then say what changed
(``"changes": {field: {"old": ..., "new": ...}}``, empty for the others) and
``fields`` holds the new values.

Truth fields are typed values (ints, lists, ISO dates, booleans), None when the
page does not show the field or shows a value that does not parse.  URL fields
(:data:`URL_FIELDS`) are *paths* (``/wp-content/...``): join them with the shop's
base URL, which the pages use to make every link absolute.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import itertools
import random
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

PER_PAGE = 12

#: Every truth field of a product, in this order.
FIELDS: tuple[str, ...] = (
    "title",
    "manufacturer",
    "device_type",
    "description",
    "certificate_id",
    "certification_date",
    "vid",
    "pid",
    "primary_device_type_id",
    "firmware_version",
    "hardware_version",
    "specification_version",
    "transport_interface",
    "tis_trp_tested",
    "compliance_document_url",
    "family_sku",
    "family_variant_sku",
    "family_id",
)
#: Fields a valid product always has (a product lacking one is rejected).
REQUIRED_FIELDS = frozenset(
    {"title", "manufacturer", "device_type", "certificate_id", "certification_date", "vid"}
)
#: Fields every Matter product has although they do not decide its validity.
ALWAYS_PRESENT = frozenset({"primary_device_type_id"})
#: Truth fields holding a URL: given as a path, to be joined with the shop's base URL.
URL_FIELDS: tuple[str, ...] = ("compliance_document_url",)
FAMILY_FIELDS: tuple[str, ...] = ("family_sku", "family_variant_sku", "family_id")
#: Optional field -> probability that an ordinary product lacks it (the family fields: see FAMILY_SHARE).
OPTIONAL_ABSENCE: dict[str, float] = {
    "description": 0.10,
    "pid": 0.15,
    "firmware_version": 0.08,
    "hardware_version": 0.12,
    "specification_version": 0.06,
    "transport_interface": 0.07,
    "tis_trp_tested": 0.25,
    "compliance_document_url": 0.12,
}
#: Share of products that belong to a family (only they show the family rows, each most of the time).
FAMILY_SHARE = 0.3
OPTIONAL_FIELDS: tuple[str, ...] = (*OPTIONAL_ABSENCE, *FAMILY_FIELDS)

#: Quirk -> share of products that have it.  Every quirk is valid (the product is saved):
#: ``missing_optional`` lacks many optional rows; ``whitespace_entities`` has extra
#: whitespace, NBSPs and character references that normalise away; ``unparseable_pid``
#: shows a Product ID that is not a number (``N/A``, ...: stored as None, with a warning);
#: ``several_device_types`` lists more than one primary device type ID;
#: ``card_no_certificate`` has no certificate line on its list card.
QUIRK_RATES: dict[str, float] = {
    "missing_optional": 0.05,
    "whitespace_entities": 0.05,
    "unparseable_pid": 0.10,
    "several_device_types": 0.15,
    "card_no_certificate": 0.08,
}
QUIRKS: tuple[str, ...] = tuple(QUIRK_RATES)
#: Fields a seeded change (``change_share``) may give a product new values for.
CHANGE_FIELDS: tuple[str, ...] = ("firmware_version", "hardware_version", "certification_date")
#: Why an invalid page is rejected: no Certificate ID row, or a Certified Date reading "TBD".
REJECT_FIELDS: tuple[str, ...] = ("certificate_id", "certification_date")
REJECT_RATE = 0.01  # per kind
#: Every quirk and reject kind is forced into products ``0..FORCE_WINDOW-1``.
FORCE_WINDOW = 100
_FORCE_AT = {
    "missing_optional": 11,
    "whitespace_entities": 23,
    "unparseable_pid": 37,
    "several_device_types": 49,
    "card_no_certificate": 31,
}
_REJECT_CANDIDATES = (61, 83, 71, 93, 67, 89, 59, 97)
UNPARSEABLE_PIDS = ("N/A", "TBD", "Various", "See family")

#: Kinds of pages of the JavaScript variant that ``js_never_render`` may stall.
JS_PAGE_KINDS = frozenset({"list", "detail"})
#: Kinds of catalogue entries.  Only ``matter`` entries are Matter certified products.
KINDS: tuple[str, ...] = ("matter", "zigbee", "platform", "software-component")
#: kind -> (product_type slug, product_category slug, category label)
KIND_TAXONOMY: dict[str, tuple[str, str, str]] = {
    "matter": ("product", "matter", "Matter"),
    "zigbee": ("product", "zigbee", "Zigbee"),
    "platform": ("platform", "matter", "Matter"),
    "software-component": ("software-component", "matter", "Matter"),
}
#: Filter ids of the list URL: ``p_type[]`` 14 = "Product", ``p_program_type[]`` 1049 = "Matter".
#: (Other entries have no id in this shop: a filter value they do not carry matches nothing.)
KIND_TYPE_ID = {"matter": "14", "zigbee": "14", "platform": None, "software-component": None}
KIND_PROGRAM_ID = {"matter": "1049", "zigbee": None, "platform": "1049", "software-component": "1049"}
#: Non-Matter entries listed after a Matter product: P(1) and P(2) (else 0): ~25% of all entries.
_ONE_OTHER, _TWO_OTHERS = 0.23, 0.05
_OTHER_KIND_WEIGHTS = (("zigbee", 0.5), ("platform", 0.3), ("software-component", 0.2))

NEWEST_DATE = dt.date(2026, 10, 30)
#: (first day of a Matter specification version, version)
SPEC_VERSIONS = (
    (dt.date(2024, 11, 1), "1.4"),
    (dt.date(2024, 5, 1), "1.3"),
    (dt.date(2023, 10, 1), "1.2"),
    (dt.date(2023, 5, 1), "1.1"),
)
ZIGBEE_SPEC_VERSIONS = ("Zigbee 3.0", "Zigbee PRO 2017", "Zigbee PRO 2023")
COMPLIANCE_PATH = "/wp-content/uploads/compliance/{slug}.zip"
#: WordPress post ids: newest highest, 4 per Matter index (a product and its followers).
POST_ID_BASE = 2_000_000


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

    @property
    def slug(self) -> str:
        return slugify(self.name)


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
    DeviceType("On/Off Plug-in Unit", 0x010A, "Energy",
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
    DeviceType("Aggregator", 0x000E, "Bridges", ("Smart Bridge", "Home Hub", "Zigbee Bridge", "Matter Gateway")),
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
    "Lighting": ((("Wi-Fi", "Bluetooth"), 30), (("Thread",), 30), (("Thread", "Bluetooth"), 15), (("Wi-Fi",), 15),
                 (("Ethernet",), 5), (("Thread", "Wi-Fi"), 5)),
    "Sensors": ((("Thread",), 60), (("Thread", "Bluetooth"), 25), (("Wi-Fi", "Bluetooth"), 15)),
    "Security": ((("Thread",), 35), (("Thread", "Bluetooth"), 20), (("Wi-Fi", "Bluetooth"), 30), (("Wi-Fi",), 15)),
    "Climate": ((("Wi-Fi",), 35), (("Wi-Fi", "Bluetooth"), 20), (("Thread",), 35), (("Thread", "Wi-Fi"), 10)),
    "Energy": ((("Wi-Fi", "Bluetooth"), 40), (("Wi-Fi",), 20), (("Thread",), 25), (("Ethernet", "Wi-Fi"), 15)),
    "Appliances": ((("Wi-Fi",), 60), (("Wi-Fi", "Bluetooth"), 25), (("Ethernet", "Wi-Fi"), 15)),
    "Bridges": ((("Ethernet",), 35), (("Ethernet", "Wi-Fi"), 30), (("Wi-Fi",), 15), (("Ethernet", "Thread"), 20)),
    "Entertainment": ((("Wi-Fi",), 50), (("Ethernet", "Wi-Fi"), 35), (("Wi-Fi", "Bluetooth"), 15)),
}
_VARIANTS = ("Pro", "Mini", "Plus", "2nd Gen", "Color", "White", "Max", "Lite", "(EU)", "(US)", "Gen 3", "S")
_EURO_VARIANTS = ("– Édition Zürich", "– Crème", "– Noir Élégance", "– Weiß", "– Café", "– Größe M")
_SKU_REGIONS = ("EU", "US", "UK", "AU", "JP", "WH", "BK", "GR")
_HARDWARE = ("1", "2", "3", "1.0", "1.1", "2.0", "A", "rev3", "V1.0", "P1", "HW 2.1")
_PLATFORM_NOUNS = ("Matter SDK Platform", "Thread SoC Platform", "Wi-Fi Module Platform", "Matter Reference Design")
_SOFTWARE_NOUNS = ("Matter Stack", "Matter Controller SDK", "Commissioning Library", "OTA Provider Component")

#: How descriptions name a device type when its lowercase name reads badly.
_KIND_NAMES = {
    "Smoke CO Alarm": "smoke and CO alarm",
    "EVSE": "EV charger",
    "Solar Power": "solar inverter",
    "On/Off Light": "light",
    "On/Off Plug-in Unit": "smart plug",
    "Electrical Sensor": "energy meter",
    "Aggregator": "bridge",
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
    "Add it to scenes & automations alongside devices from other brands.",
    "Multi-admin support lets several ecosystems control it at the same time.",
)
_EURO_SENTENCES = (
    "It’s designed in Zürich – and built to last.",
    "Crème finish, café-grade materials – très élégant.",
)

_SLUG_RE = re.compile(r"[^a-z0-9]+")


def normalise_text(text: str) -> str:
    """Collapse every whitespace run (NBSP included) to one space and strip."""
    return " ".join(text.split())


def slugify(text: str) -> str:
    """Lowercase ASCII, hyphen-separated form of ``text``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _SLUG_RE.sub("-", ascii_text.lower()).strip("-")


def format_date(day: dt.date) -> str:
    """The site's date format, MM/DD/YYYY: ``06/27/2025``."""
    return f"{day.month:02d}/{day.day:02d}/{day.year}"


def format_hex(value: int) -> str:
    """``0x0D02``: four (or more) uppercase hex digits."""
    return f"0x{value:04X}"


def certification_day(index: int) -> dt.date:
    """Certification date of Matter product ``index``: about 3.5 products a day, newest first."""
    return NEWEST_DATE - dt.timedelta(days=index * 2 // 7)


def seeded_unit(seed: int, *parts: object) -> float:
    """A stable uniform draw in [0, 1) from ``seed`` and ``parts`` (blake2b; not Python's ``hash``)."""
    key = "\x1f".join(map(str, (seed, *parts))).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


#: (Matter index, sub-index): sub -1 is Matter product ``index``, sub 0, 1 the non-Matter
#: entries listed right after it.  Tuples sort in list order (newest first).
Entry = tuple[int, int]


@dataclass(slots=True)
class Product:
    """One catalogue entry: its truth ``fields`` plus what the pages need to show it."""

    index: int
    #: -1 for a Matter product, else the position among the non-Matter entries after Matter product ``index``.
    sub: int
    kind: str
    slug: str
    post_id: int
    quirks: tuple[str, ...]
    reject_field: str | None
    fields: dict[str, Any]
    #: Fields present on the page but unparseable (stored as None, with a warning).
    warnings: tuple[str, ...]
    #: ``product_company-<slug>`` and ``product_device_type-<slug>`` (None: no device type class).
    company_slug: str
    device_slug: str | None
    #: Text of the Certified Date row ("TBD" on a rejected page, None: no row).
    date_text: str | None
    #: Text of the Product ID row (a hex number, or unparseable text), or None.
    pid_text: str | None
    #: Whether the list card shows the certificate line.
    card_certificate: bool
    #: Seed of the whitespace/entity noise of ``whitespace_entities`` pages.
    noise_seed: int
    #: 404 or 410 when the product is permanently gone (its detail page always answers that status).
    gone_status: int | None = None
    #: The dead host its list page links it on (absolute URL), or None for a link to the shop.
    dead_host: str | None = None
    #: With ``change_share``: {field: {"old": value, "new": value}} of its seeded change ({}: none).
    changes: dict[str, dict[str, Any]] | None = None

    @property
    def entry(self) -> Entry:
        return (self.index, self.sub)

    @property
    def matter(self) -> bool:
        return self.kind == "matter"

    @property
    def path(self) -> str:
        return f"/csa_product/{self.slug}/"

    @property
    def category_label(self) -> str:
        return KIND_TAXONOMY[self.kind][2]

    @property
    def css_classes(self) -> str:
        """The ``class`` of its ``<article>`` (card and detail page), WordPress style."""
        product_type, category, _ = KIND_TAXONOMY[self.kind]
        classes = (
            f"post-{self.post_id} product type-product status-publish hentry"
            f" product_type-{product_type} product_category-{category}"
        )
        if self.device_slug is not None:
            classes += f" product_device_type-{self.device_slug}"
        return f"{classes} product_company-{self.company_slug}"

    @property
    def list_page(self) -> int:
        """Page of the (fully grown) Matter list this Matter product is on."""
        return self.index // PER_PAGE + 1

    @property
    def list_position(self) -> int:
        return self.index % PER_PAGE + 1

    @property
    def dead_reason(self) -> str | None:
        """Why a correct crawl dead-letters this product (its page can never be fetched), or None."""
        if self.dead_host is not None:
            return "circuit_open"
        if self.gone_status is not None:
            return f"http_{self.gone_status}"
        return None

    def truth(self) -> dict[str, Any]:
        """The ground-truth line of this Matter product.

        ``expected`` is ``saved``, ``rejected`` or ``dead_letter``; a product whose page
        can never be fetched (gone, or linked on the dead host) is a dead letter even when
        its page is invalid (``reject_field`` still describes the page).  ``host`` is the
        dead host the list page links the product on (``http://<host>:<dead port><path>``),
        None for a link to the shop.  ``warnings`` names the fields shown on the page with
        a value that does not parse (a correct crawler stores None and warns).
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
            "warnings": list(self.warnings),
            "fields": {k: list(v) if isinstance(v, list) else v for k, v in self.fields.items()},
            **({} if self.changes is None else {"changes": self.changes}),
        }

    def other_truth(self) -> dict[str, Any]:
        """The truth line of a non-Matter entry (``truth --all``): never in the Matter list, never to be stored."""
        return {
            "key": self.slug,
            "path": self.path,
            "host": None,
            "list_page": None,
            "list_position": None,
            "expected": "excluded",
            "dead_reason": None,
            "reject_field": None,
            "quirks": [],
            "warnings": [],
            "fields": {k: list(v) if isinstance(v, list) else v for k, v in self.fields.items()},
        }


def _draw_flags(rng: random.Random) -> tuple[set[str], str | None]:
    """The first draws of a product's generator: its quirks and reject kind."""
    quirks = {q for q, rate in QUIRK_RATES.items() if rng.random() < rate}
    r = rng.random()
    reject = REJECT_FIELDS[0] if r < REJECT_RATE else REJECT_FIELDS[1] if r < 2 * REJECT_RATE else None
    return quirks, reject


def _weighted(rng: random.Random, options: tuple[tuple[Any, int], ...]) -> Any:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


_VENDOR_CUMULATIVE = list(itertools.accumulate(v.weight for v in VENDORS))
_VENDOR_SLUGS = tuple(slugify(v.name) for v in VENDORS)

DEFAULT_DEAD_HOST = "127.0.0.2"


def _draw_vendor(unit: float) -> int:
    """Index in :data:`VENDORS` of a weighted draw from the uniform ``unit``."""
    return bisect.bisect_right(_VENDOR_CUMULATIVE, unit * _VENDOR_CUMULATIVE[-1])


class Catalogue:
    """``products`` (+ ``grow``) Matter products generated from ``seed``; newest (index 0) first.

    ``product(i)`` builds Matter product ``i`` on demand (LRU-cached), ``other(i, j)``
    the j-th non-Matter entry listed after it, ``entry((i, j))`` either.  ``pages`` is
    the number of pages of the (fully grown) Matter list, ``truth()`` yields the
    ground-truth lines.  ``len()`` is the number of Matter products, ``products + grow``.

    ``gone_share`` of the Matter products are permanently gone (detail page 404 for an
    even index, 410 for an odd one) and ``dead_share`` are linked on ``dead_host``
    (see :class:`Product`).  Both are drawn per index from the seed with a hash,
    independently of each other, of the product generator and of the shop size; a
    product drawn for both is dead (it is never fetched from the shop).

    ``js_never_render`` of the JavaScript variant's pages never render (their script
    never inserts the content; :meth:`js_stalls`): list pages by number, detail pages
    by product, of the kinds in ``js_never_render_on``; the truth lines then say which
    pages of each product stall (``"js_never_renders": ["list", "detail"]``, or fewer).
    """

    def __init__(
        self,
        products: int,
        seed: int,
        gone_share: float = 0.0,
        dead_share: float = 0.0,
        dead_host: str = DEFAULT_DEAD_HOST,
        grow: int = 0,
        change_share: float = 0.0,
        change_seed: int | None = None,
        js_never_render: float = 0.0,
        js_never_render_on: frozenset[str] = JS_PAGE_KINDS,
        js_never_render_seed: int | None = None,
    ) -> None:
        if products < 0 or grow < 0:
            raise ValueError("products and grow must be >= 0")
        shares = (("gone_share", gone_share), ("dead_share", dead_share), ("change_share", change_share),
                  ("js_never_render", js_never_render))  # fmt: skip
        for name, share in shares:
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        self.products = products
        self.grow = grow
        self.total = products + grow
        self.seed = seed
        self.gone_share = gone_share
        self.dead_share = dead_share
        self.dead_host = dead_host
        self.change_share = change_share
        self.change_seed = seed if change_seed is None else change_seed
        if not js_never_render_on <= JS_PAGE_KINDS:
            raise ValueError(f"js_never_render_on: pages of kinds {sorted(JS_PAGE_KINDS)}")
        self.js_never_render = js_never_render
        self.js_never_render_on = frozenset(js_never_render_on)
        self.js_never_render_seed = seed if js_never_render_seed is None else js_never_render_seed
        self.pages = max(1, -(-self.total // PER_PAGE))
        master = random.Random(seed)
        self._seeds = [master.getrandbits(64) for _ in range(max(self.total, FORCE_WINDOW))]
        self._forced = self._force_window()
        self.product = lru_cache(maxsize=4096)(self._make_product)
        self.other = lru_cache(maxsize=2048)(self._make_other)
        self._entries: list[Entry] | None = None
        self._views: dict[frozenset[str], list[Entry]] = {}
        self._vendors: list[int] | None = None
        self._by_vendor: dict[int, list[int]] | None = None

    def __len__(self) -> int:
        return self.total

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

    # --- the lists ------------------------------------------------------------------------------------------

    def others_of(self, index: int) -> tuple[str, ...]:
        """Kinds of the non-Matter entries listed right after Matter product ``index``."""
        draw = seeded_unit(self.seed, "others", index)
        count = 2 if draw < _TWO_OTHERS else 1 if draw < _TWO_OTHERS + _ONE_OTHER else 0
        kinds = []
        for sub in range(count):
            point = seeded_unit(self.seed, "kind", index, sub)
            for kind, weight in _OTHER_KIND_WEIGHTS:  # noqa: B007 (the loop picks ``kind``)
                point -= weight
                if point < 0:
                    break
            kinds.append(kind)
        return tuple(kinds)

    def kind_of(self, entry: Entry) -> str:
        index, sub = entry
        return "matter" if sub < 0 else self.others_of(index)[sub]

    def entries(self) -> list[Entry]:
        """Every entry of the (fully grown) unfiltered list, newest first."""
        if self._entries is None:
            entries: list[Entry] = []
            for index in range(self.total):
                entries.append((index, -1))
                entries.extend((index, sub) for sub in range(len(self.others_of(index))))
            self._entries = entries
        return self._entries

    def view(self, kinds: frozenset[str]) -> list[Entry]:
        """The entries of ``kinds`` in list order (cached); ``{"matter"}`` is the Matter list."""
        entries = self._views.get(kinds)
        if entries is None:
            if kinds == frozenset({"matter"}):
                entries = [(index, -1) for index in range(self.total)]
            elif kinds >= set(KINDS):
                entries = self.entries()
            else:
                entries = [e for e in self.entries() if self.kind_of(e) in kinds]
            self._views[kinds] = entries
        return entries

    def page_range(self, page: int) -> range:
        """Indices of the Matter products on page ``page`` (1-based) of the fully grown Matter list."""
        start = (page - 1) * PER_PAGE
        return range(start, min(start + PER_PAGE, self.total))

    # --- lookups ------------------------------------------------------------------------------------------------

    def entry(self, entry: Entry) -> Product:
        index, sub = entry
        return self.product(index) if sub < 0 else self.other(index, sub)

    def entry_of_slug(self, slug: str) -> Entry | None:
        """The entry with this slug, or None."""
        head, _, last = slug.rpartition("-")
        sub = -1
        if len(last) == 1:
            if not last.isdigit() or last == "0":
                return None
            sub = int(last) - 1
            head, _, last = head.rpartition("-")
        if len(last) < 5 or not last.isdigit() or not last.isascii():
            return None
        index = int(last) - 1
        if not 0 <= index < self.total or (sub >= 0 and sub >= len(self.others_of(index))):
            return None
        entry = (index, sub)
        return entry if self.entry(entry).slug == slug else None

    def vendor_index(self, index: int) -> int:
        """Index in :data:`VENDORS` of the maker of Matter product ``index``."""
        if self._vendors is not None:
            return self._vendors[index]
        return _draw_vendor(seeded_unit(self.seed, "vendor", index))

    def more_by(self, entry: Entry, count: int = 3) -> list[int]:
        """Up to ``count`` Matter products of the entry's company older than it (its "More by" section).

        Only older products, so the section never shows a product the shop has not added yet.
        """
        if self._by_vendor is None:
            self._vendors = [_draw_vendor(seeded_unit(self.seed, "vendor", i)) for i in range(self.total)]
            self._by_vendor = {}
            for i, vendor in enumerate(self._vendors):
                self._by_vendor.setdefault(vendor, []).append(i)
        product = self.entry(entry)
        company = product.company_slug
        vendor = _VENDOR_SLUGS.index(company)
        indices = self._by_vendor.get(vendor, [])
        at = bisect.bisect_right(indices, entry[0])
        return indices[at : at + count]

    def is_changed(self, index: int) -> bool:
        """Whether Matter product ``index`` is drawn to show changed values (when it is saved)."""
        return self.change_share > 0 and seeded_unit(self.change_seed, "change", index) < self.change_share

    def _change(self, product: Product) -> dict[str, dict[str, Any]]:
        """Apply the seeded change of a saved Matter product drawn by :meth:`is_changed`; {} for others."""
        if product.reject_field is not None or product.dead_reason is not None or not self.is_changed(product.index):
            return {}
        rng = random.Random(int(seeded_unit(self.change_seed, "values", product.index) * 2**64))
        return _change_values(product, rng)

    def is_dead(self, index: int) -> bool:
        """Whether Matter product ``index`` is linked on the dead host."""
        return self.dead_share > 0 and seeded_unit(self.seed, "dead", index) < self.dead_share

    def gone_status(self, index: int) -> int | None:
        """404/410 when Matter product ``index`` is permanently gone (and not dead), else None."""
        if self.gone_share > 0 and seeded_unit(self.seed, "gone", index) < self.gone_share:
            if not self.is_dead(index):
                return 404 if index % 2 == 0 else 410
        return None

    def js_stalls(self, kind: str, page_or_slug: int | str) -> bool:
        """Whether the JS variant's page never renders: list page number ``page_or_slug`` (``kind``
        ``"list"``, any view) or the detail page of the product with slug ``page_or_slug`` (``"detail"``).

        Drawn per page from ``js_never_render_seed`` (independently of everything else)
        with probability ``js_never_render``, for the kinds in ``js_never_render_on``.
        """
        if self.js_never_render <= 0 or kind not in self.js_never_render_on:
            return False
        return seeded_unit(self.js_never_render_seed, "js", kind, page_or_slug) < self.js_never_render

    def _js_truth(self, line: dict[str, Any]) -> dict[str, Any]:
        """``line`` with ``js_never_renders``: which JS pages of the product never render (``list``, ``detail``)."""
        if self.js_never_render > 0:
            line["js_never_renders"] = [
                kind for kind, at in (("list", line["list_page"]), ("detail", line["key"]))
                if at is not None and self.js_stalls(kind, at)
            ]  # fmt: skip
        return line

    def gone_paths(self) -> dict[str, int]:
        """Detail path -> 404/410 of every gone product."""
        if self.gone_share <= 0:
            return {}
        paths = {}
        for index in range(self.total):
            status = self.gone_status(index)
            if status is not None:
                paths[self.product(index).path] = status
        return paths

    def truth(self, matter_only: bool = True, grow: int | None = None) -> Iterator[dict[str, Any]]:
        """Ground truth, one dict per Matter product, newest first (the fully grown catalogue).

        With ``matter_only=False``, every entry of the unfiltered list in its order, each line
        with ``"matter"`` (bool), ``"kind"`` (:data:`KINDS`), ``"all_page"`` and ``"all_position"``
        (its place in the unfiltered list); non-Matter entries are ``"expected": "excluded"``
        with no Matter list position.  ``grow`` (default: the catalogue's own) gives the truth
        of this catalogue grown by that many products: ``Catalogue(n, s).truth(grow=g)`` is
        ``Catalogue(n, s, grow=g).truth()``.
        """
        if grow is not None and grow != self.grow:
            grown = Catalogue(self.products, self.seed, self.gone_share, self.dead_share, self.dead_host, grow=grow,
                              change_share=self.change_share, change_seed=self.change_seed,
                              js_never_render=self.js_never_render, js_never_render_on=self.js_never_render_on,
                              js_never_render_seed=self.js_never_render_seed)  # fmt: skip
            yield from grown.truth(matter_only)
            return
        if matter_only:
            for index in range(self.total):
                yield self._js_truth(self.product(index).truth())
            return
        for number, entry in enumerate(self.entries()):
            product = self.entry(entry)
            line = self._js_truth(product.truth()) if product.matter else product.other_truth()
            line["matter"] = product.matter
            line["kind"] = product.kind
            line["all_page"] = number // PER_PAGE + 1
            line["all_position"] = number % PER_PAGE + 1
            yield line

    # --- generation ---------------------------------------------------------------------------------------------

    def _make_product(self, index: int) -> Product:
        if not 0 <= index < self.total:
            raise IndexError(index)
        rng = random.Random(self._seeds[index])
        quirk_set, reject = _draw_flags(rng)
        if index in self._forced:
            quirk_set, reject = self._forced[index]
        quirks = tuple(q for q in QUIRKS if q in quirk_set)

        vendor = VENDORS[self.vendor_index(index)]
        category = rng.choice(vendor.categories)
        dtype = rng.choice(_TYPES_BY_CATEGORY[category])
        noun = rng.choice(dtype.nouns)
        title = f"{vendor.brand} {noun}"
        if vendor.european and rng.random() < 0.4:
            title += " " + rng.choice(_EURO_VARIANTS)
        elif rng.random() < 0.5:
            title += " " + rng.choice(_VARIANTS)
        slug = f"{slugify(title)}-{index + 1:05d}"
        day = certification_day(index)
        yy = day.year % 100
        initials = "".join(w[0] for w in noun.split() if w[0].isalnum()).upper()
        family_sku = f"{vendor.code}-{initials}{rng.randint(10, 99)}"
        transports = _weighted(rng, _TRANSPORTS[category])
        specs = [v for start, v in SPEC_VERSIONS if day >= start] + ["1.0"]
        spec = specs[0] if rng.random() < 0.6 else rng.choice(specs)
        type_ids = [dtype.type_id]
        if "several_device_types" in quirk_set:
            pool = [t.type_id for c in (category, *_RELATED[category]) for t in _TYPES_BY_CATEGORY[c]]
            pool = sorted(set(pool) - {dtype.type_id})
            type_ids += rng.sample(pool, min(len(pool), rng.randint(1, 2)))
        pid = rng.randint(1, 0x8FFF)
        fields: dict[str, Any] = {
            "title": title,
            "manufacturer": vendor.name,
            "device_type": dtype.slug,
            "description": _excerpt(rng, title, vendor, dtype, transports),
            "certificate_id": f"CSA{yy:02d}{day.timetuple().tm_yday:03d}MAT{40000 + index:05d}-{yy:02d}",
            "certification_date": day.isoformat(),
            "vid": vendor.vid,
            "pid": pid,
            "primary_device_type_id": type_ids,
            "firmware_version": _firmware(rng),
            "hardware_version": rng.choice(_HARDWARE),
            "specification_version": spec,
            "transport_interface": list(transports),
            "tis_trp_tested": rng.random() < 0.6,
            "compliance_document_url": COMPLIANCE_PATH.format(slug=slug),
            "family_sku": family_sku,
            "family_variant_sku": f"{family_sku}-{rng.choice(_SKU_REGIONS)}",
            "family_id": f"{vendor.code}-FAM-{rng.randint(1, 9999):04d}",
        }
        absent = {f for f, p in OPTIONAL_ABSENCE.items() if rng.random() < p}
        in_family = rng.random() < FAMILY_SHARE
        family_draws = [rng.random() for _ in FAMILY_FIELDS]
        if not in_family:
            absent.update(FAMILY_FIELDS)
        else:
            absent.update(f for f, u, p in zip(FAMILY_FIELDS, family_draws, (0.05, 0.2, 0.1), strict=True) if u < p)
        if "missing_optional" in quirk_set:
            absent.update(rng.sample(OPTIONAL_FIELDS, rng.randint(5, 9)))
        pid_text: str | None = format_hex(pid)
        warnings: tuple[str, ...] = ()
        unparseable = rng.choice(UNPARSEABLE_PIDS)
        if "unparseable_pid" in quirk_set:
            absent.discard("pid")
            pid_text, warnings = unparseable, ("pid",)
            fields["pid"] = None
        if reject:
            absent.add(reject)
        for name in absent:
            fields[name] = None
        if "pid" in absent:
            pid_text = None
        card_certificate = "card_no_certificate" not in quirk_set and fields["certificate_id"] is not None
        if reject == "certification_date":
            date_text: str | None = "TBD"
        else:
            date_text = format_date(day)
        product = Product(
            index=index,
            sub=-1,
            kind="matter",
            slug=slug,
            post_id=POST_ID_BASE - 4 * index,
            quirks=quirks,
            reject_field=reject,
            fields=fields,
            warnings=warnings,
            company_slug=_VENDOR_SLUGS[self.vendor_index(index)],
            device_slug=dtype.slug,
            date_text=date_text,
            pid_text=pid_text,
            card_certificate=card_certificate,
            noise_seed=rng.getrandbits(32),
            gone_status=self.gone_status(index),
            dead_host=self.dead_host if self.is_dead(index) else None,
        )
        if self.change_share > 0:
            product.changes = self._change(product)
        return product

    def _make_other(self, index: int, sub: int) -> Product:
        """The ``sub``-th non-Matter entry after Matter product ``index``: a Zigbee product, a platform, ..."""
        if not 0 <= index < self.total:
            raise IndexError(index)
        kind = self.others_of(index)[sub]
        rng = random.Random(int(seeded_unit(self.seed, "other", index, sub) * 2**64))
        vendor_index = _draw_vendor(rng.random())
        vendor = VENDORS[vendor_index]
        category = rng.choice(vendor.categories)
        dtype = rng.choice(_TYPES_BY_CATEGORY[category])
        day = certification_day(index)
        yy = day.year % 100
        serial = f"{index + 1:05d}-{sub + 1}"
        if kind == "zigbee":
            title = f"{vendor.brand} {rng.choice(dtype.nouns)} Zigbee"
            certificate = f"ZIG{yy:02d}{day.timetuple().tm_yday:03d}ZB3{20000 + index:05d}{sub}-{yy:02d}"
            spec, transports, vid, type_ids = rng.choice(ZIGBEE_SPEC_VERSIONS), ["Zigbee"], None, None
        else:
            nouns = _PLATFORM_NOUNS if kind == "platform" else _SOFTWARE_NOUNS
            title = f"{vendor.brand} {rng.choice(nouns)} {rng.randint(1, 5)}.{rng.randint(0, 9)}"
            certificate = f"CSA{yy:02d}{day.timetuple().tm_yday:03d}MAT{80000 + index:05d}{sub}-{yy:02d}"
            spec = next(v for start, v in SPEC_VERSIONS + ((dt.date.min, "1.0"),) if day >= start)
            transports = list(_weighted(rng, _TRANSPORTS[category]))
            vid, type_ids = vendor.vid, [dtype.type_id]
        slug = f"{slugify(title)}-{serial}"
        fields: dict[str, Any] = dict.fromkeys(FIELDS)
        fields.update(
            title=title,
            manufacturer=vendor.name,
            device_type=dtype.slug,
            description=f"{title} by {vendor.name}.",
            certificate_id=certificate,
            certification_date=day.isoformat(),
            vid=vid,
            primary_device_type_id=type_ids,
            firmware_version=_firmware(rng),
            hardware_version=rng.choice(_HARDWARE) if kind == "zigbee" else None,
            specification_version=spec,
            transport_interface=transports,
            compliance_document_url=COMPLIANCE_PATH.format(slug=slug),
        )
        return Product(
            index=index,
            sub=sub,
            kind=kind,
            slug=slug,
            post_id=POST_ID_BASE - 4 * index - 1 - sub,
            quirks=(),
            reject_field=None,
            fields=fields,
            warnings=(),
            company_slug=_VENDOR_SLUGS[vendor_index],
            device_slug=dtype.slug,
            date_text=format_date(day),
            pid_text=None,
            card_certificate=True,
            noise_seed=rng.getrandbits(32),
        )


def _change_values(product: Product, rng: random.Random) -> dict[str, dict[str, Any]]:
    """Give ``product`` new values for one to three :data:`CHANGE_FIELDS`; return {field: {old, new}}."""
    names = [name for name in CHANGE_FIELDS if rng.random() < 0.4] or [rng.choice(CHANGE_FIELDS)]
    changes: dict[str, dict[str, Any]] = {}
    for name in names:
        old = product.fields[name]
        if name == "certification_date":  # re-certified: a later date (never after the newest), else corrected
            day = dt.date.fromisoformat(old) + dt.timedelta(days=rng.randint(1, 60))
            if day > NEWEST_DATE:
                day = dt.date.fromisoformat(old) - dt.timedelta(days=rng.randint(1, 30))
            new: Any = day.isoformat()
            product.date_text = format_date(day)
        elif name == "firmware_version":
            new = _newer_version(old, rng)
        else:
            new = rng.choice([h for h in _HARDWARE if h != old])
        product.fields[name] = new
        changes[name] = {"old": old, "new": new}
    return changes


_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def _newer_version(old: str | None, rng: random.Random) -> str:
    """A firmware version after ``old``: its last number raised (``1.2.3`` -> ``1.2.5``), any suffix dropped."""
    if old is None:
        return f"{rng.randint(1, 3)}.0.{rng.randint(0, 9)}"
    base = old.split("-", 1)[0].split(" (", 1)[0]
    match = _LAST_NUMBER.search(base)
    if match is None:
        return base + ".1"
    return f"{base[: match.start()]}{int(match.group(1)) + rng.randint(1, 3)}{base[match.end():]}"


def _firmware(rng: random.Random) -> str:
    style = rng.random()
    if style < 0.6:
        text = f"{rng.randint(1, 4)}.{rng.randint(0, 9)}.{rng.randint(0, 20)}"
    elif style < 0.8:
        text = f"v{rng.randint(1, 3)}.{rng.randint(0, 12)}"
    else:
        text = str(rng.randint(1, 300))
    if rng.random() < 0.1:
        text += rng.choice(("-rc1", "-beta3", " (build 4711)"))
    return text


def _excerpt(rng: random.Random, title: str, vendor: Vendor, dtype: DeviceType, transports: tuple[str, ...]) -> str:
    """The card's short description (plain text, already normalised)."""
    params = {
        "title": title,
        "brand": vendor.brand,
        "maker": vendor.name,
        "kind": _KIND_NAMES.get(dtype.name, dtype.name.lower()),
        "adj": rng.choice(_ADJECTIVES),
        "transport": " and ".join(transports),
    }
    sentences = [rng.choice(_INTRO).format(**params)]
    if vendor.european and rng.random() < 0.3:
        sentences.append(rng.choice(_EURO_SENTENCES))
    sentences += [s.format(**params) for s in rng.sample(_GENERAL, rng.randint(0, 2))]
    text = " ".join(sentences)
    words = text.split(" ")
    if len(words) > 24 and rng.random() < 0.5:  # WordPress cuts long excerpts
        text = " ".join(words[:20]) + " […]"
    return text
