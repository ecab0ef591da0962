"""Word lists the shop's catalog and goals are composed from: categories, product types, brands, text.

Everything here was written for this project. Each product type names its search query, its
category path, title heads, the nouns a title of that type carries (for the scoring's type check),
attributes and option groups. The lists are shaped so that the published scoring can tell products
apart: no attribute is a fuzzy match for another, no attribute hides inside a title head or a
filler sentence (``tests/envs/webshop/test_catalog.py`` checks this).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple


@dataclass(frozen=True)
class ProductType:
    """A kind of product: every product of a type shares its query and category path."""

    category: str
    """Short top-level category name (``beauty``, ``food``, ...), reported as ``info["category"]``."""
    query: str
    """The search query a shopper (and the goal) uses for this type; also how goals name it."""
    path: Tuple[str, ...]
    """Category path below the category's root, e.g. ``("Hair Care", "Hair Extensions")``."""
    heads: Tuple[str, ...]
    """Title heads, e.g. ``Clip in Hair Extensions``; one is picked per product."""
    nouns: Tuple[str, ...]
    """Nouns that a title of this type carries (singular)."""
    modifiers: Tuple[str, ...]
    """Title words that are neither attributes nor options (``Straight``, ``Velvet``)."""
    attributes: Tuple[str, ...]
    """Type-specific attributes; the category's shared attributes are added to them."""
    options: Dict[str, Tuple[str, ...]]
    """Option groups and the values a product may offer."""
    price: Tuple[float, float]
    """Price range in dollars."""


CATEGORY_ROOTS: Dict[str, str] = {
    "beauty": "Beauty & Personal Care",
    "food": "Grocery & Gourmet Food",
    "fashion": "Clothing, Shoes & Jewelry",
    "furniture": "Home & Kitchen",
    "electronics": "Electronics",
}

CATEGORY_ATTRIBUTES: Dict[str, Tuple[str, ...]] = {
    "beauty": ("cruelty free", "travel size", "dermatologist tested"),
    "food": ("gluten free", "non gmo", "kosher certified"),
    "fashion": ("high quality", "comfortable fit"),
    "furniture": ("easy assembly", "space saving"),
    "electronics": ("compact design", "premium build"),
}

BRANDS: Dict[str, Tuple[str, ...]] = {
    "beauty": ("Lumora", "Velisse", "Oriel", "Bellanova", "Seraphine", "Glowry", "Nuvea", "Aurelle"),
    "food": ("Harvest Lane", "Nutrivo", "Pantry Fox", "Kindled", "Orchard Row", "Mesa Farms", "Tillway"),
    "fashion": ("Trevano", "Kestrel", "Marlowe", "Vantier", "Northpeak", "Solene", "Urbanna"),
    "furniture": ("Hearthwell", "Nestora", "Lindell", "Casabrio", "Woodmere", "Ardent Home"),
    "electronics": ("Voltrix", "Zentro", "Auralink", "Pixelon", "Kinetiq", "Soundara", "Nexel"),
}

COLORS = ("black", "white", "gray", "red", "pink", "blue", "green", "brown", "beige", "purple", "navy", "gold", "silver")
"""Canonical colour names; an option value that names one is normalised to it before matching."""

COLOR_SYNONYMS: Dict[str, str] = {"grey": "gray", "charcoal": "gray", "ivory": "white", "cream": "beige", "tan": "beige"}

_APPAREL_COLORS = ("black", "white", "heather gray", "navy", "red", "olive green", "burgundy", "pink", "sky blue")
_APPAREL_SIZES = ("x-small", "small", "medium", "large", "xx-large")
_HOME_COLORS = ("white", "black", "gray", "beige", "navy", "sage green", "blush pink", "walnut brown")


def _t(category: str, query: str, path: str, heads: str, nouns: str, modifiers: str, attributes: str,
       options: Dict[str, Tuple[str, ...]], price: Tuple[float, float]) -> ProductType:
    split = lambda text, sep: tuple(part.strip() for part in text.split(sep) if part.strip())  # noqa: E731
    return ProductType(category, query, split(path, ">"), split(heads, "|"), split(nouns, " "),
                       split(modifiers, "|"), split(attributes, "|"), options, price)


PRODUCT_TYPES: Tuple[ProductType, ...] = (
    # beauty
    _t("beauty", "clip-in hair extension", "Hair Care > Hair Extensions, Wigs & Accessories > Extensions",
       "Clip in Hair Extensions|Clip-In Hair Extension|Hair Extensions Clip In", "hair extension clip",
       "Straight|Wavy|Curly|Remy|Synthetic|Thick", "natural looking|heat resistant|tangle free|double weft",
       {"color": ("jet black", "dark brown", "light brown", "blonde", "auburn red", "silver gray"),
        "length": ("14 inch", "20 inch", "26 inch", "30 inch")}, (15, 80)),
    _t("beauty", "matte lipstick", "Makeup > Lips > Lipstick", "Matte Lipstick|Liquid Lipstick|Lipstick Set",
       "lipstick set", "Velvet|Creamy|Satin|Glossy|Classic", "long lasting|highly pigmented|paraben free|waterproof formula",
       {"color": ("ruby red", "nude beige", "berry purple", "coral pink", "chocolate brown"),
        "count": ("1 pack", "2 pack", "3 pack", "6 pack")}, (5, 30)),
    _t("beauty", "moisturizing shampoo", "Hair Care > Shampoo & Conditioner > Shampoos",
       "Moisturizing Shampoo|Shampoo|Shampoo and Conditioner Set", "shampoo conditioner set",
       "Argan Oil|Biotin|Tea Tree|Coconut|Salon", "sulfate free|color safe|for dry hair|volumizing",
       {"scent": ("lavender", "citrus", "peppermint", "unscented", "rose"),
        "size": ("8 fl oz", "16 fl oz", "33.8 fl oz")}, (6, 35)),
    _t("beauty", "face moisturizer", "Skin Care > Face > Moisturizers", "Face Moisturizer|Daily Face Cream|Hydrating Face Lotion",
       "face moisturizer cream lotion", "Hyaluronic Acid|Vitamin C|Aloe|Retinol|Ceramide",
       "oil free|fragrance free|non comedogenic|for sensitive skin|with spf 30",
       {"size": ("1.7 oz", "2.5 oz", "4 oz")}, (8, 45)),
    _t("beauty", "nail polish", "Foot, Hand & Nail Care > Nail Art & Polish > Nail Polish",
       "Nail Polish|Gel Nail Polish|Nail Polish Set", "nail polish set", "Glitter|Chrome|Neon|Pastel|Shimmer",
       "non toxic|chip resistant|quick drying|vegan formula",
       {"color": ("red", "pink", "purple", "blue", "black", "white", "gold"), "count": ("1 pack", "3 pack", "6 pack")},
       (5, 25)),
    _t("beauty", "makeup brush set", "Tools & Accessories > Makeup Brushes & Tools > Brush Sets",
       "Makeup Brush Set|Makeup Brushes|Foundation Brush Kit", "makeup brush set kit",
       "Kabuki|Professional|Travel|Bamboo|Premium", "soft bristles|easy to clean|with storage case|synthetic fibers",
       {"color": ("black", "pink", "rose gold", "white"), "count": ("5 pieces", "12 pieces", "18 pieces")}, (8, 40)),
    # food
    _t("food", "protein bar", "Snacks & Sweets > Bars > Protein Bars", "Protein Bars|Protein Bar Variety Pack|Snack Bars",
       "protein bar snack pack", "Crunchy|Chewy|Baked|Layered|Soft", "low sugar|high fiber|plant based|keto friendly",
       {"flavor": ("chocolate chip", "peanut butter", "cookie dough", "lemon", "salted caramel"),
        "count": ("6 count", "12 count", "30 count")}, (10, 45)),
    _t("food", "ground coffee", "Beverages > Coffee, Tea & Cocoa > Coffee > Ground Coffee",
       "Ground Coffee|Medium Roast Coffee|Coffee Grounds", "coffee roast ground",
       "Colombian|Arabica|Breakfast Blend|House Blend|Espresso", "fair trade|low acid|decaf|organic beans",
       {"flavor": ("hazelnut", "french vanilla", "mocha", "original"), "size": ("12 ounce", "2 pound", "5 pound")}, (8, 40)),
    _t("food", "snack crackers", "Snacks & Sweets > Crackers", "Snack Crackers|Crackers|Crispy Crackers",
       "cracker snack", "Thin|Rosemary|Multigrain|Stone Ground|Rustic", "low sodium|whole grain|vegan|no artificial flavors",
       {"flavor": ("sea salt", "cheddar", "garlic herb", "original"), "count": ("1 pack", "4 pack", "8 pack")}, (4, 25)),
    _t("food", "herbal tea", "Beverages > Coffee, Tea & Cocoa > Tea > Herbal", "Herbal Tea|Herbal Tea Bags|Loose Leaf Tea",
       "tea bag leaf", "Soothing|Wellness|Bedtime|Morning|Classic", "caffeine free|individually wrapped|organic herbs",
       {"flavor": ("chamomile", "peppermint", "ginger", "hibiscus", "lemon balm"), "count": ("20 count", "40 count", "100 count")},
       (5, 25)),
    _t("food", "olive oil", "Pantry Staples > Cooking Oils > Olive Oil", "Extra Virgin Olive Oil|Olive Oil|Olive Oil Bottle",
       "olive oil bottle", "Italian|Greek|Spanish|Imported|Estate", "cold pressed|first harvest|glass bottle",
       {"size": ("16.9 fl oz", "25.5 fl oz", "1 liter")}, (9, 50)),
    _t("food", "gummy candy", "Snacks & Sweets > Candy & Chocolate > Gummy Candy", "Gummy Candy|Gummy Bears|Sour Gummies",
       "gummy candy bear", "Fruity|Chewy|Assorted|Sour|Classic", "fat free|natural flavors|party size",
       {"flavor": ("strawberry", "watermelon", "sour apple", "tropical"), "size": ("5 ounce", "2 pound", "5 pound")}, (4, 30)),
    # fashion
    _t("fashion", "women's running shoes", "Women > Shoes > Athletic > Running", "Running Shoes|Sneakers|Walking Shoes",
       "shoe sneaker", "Mesh|Knit|Road|Trail|Cushioned", "non slip|arch support|memory foam|breathable upper",
       {"size": ("6", "7", "8", "9", "10", "11"), "color": _APPAREL_COLORS}, (30, 120)),
    _t("fashion", "men's t-shirt", "Men > Clothing > Shirts > T-Shirts", "T-Shirt|Crew Neck Tee|Graphic Tee",
       "shirt tee", "Cotton|Vintage|Classic|Basic|Heavyweight", "slim fit|moisture wicking|short sleeve|tagless collar",
       {"size": _APPAREL_SIZES, "color": _APPAREL_COLORS}, (10, 35)),
    _t("fashion", "women's yoga pants", "Women > Clothing > Active > Leggings", "Yoga Pants|High Waist Leggings|Workout Leggings",
       "pant legging", "Buttery Soft|Seamless|Athletic|Stretch|Flared", "tummy control|squat proof|with pockets|four way stretch",
       {"size": _APPAREL_SIZES, "color": _APPAREL_COLORS}, (15, 45)),
    _t("fashion", "men's hoodie", "Men > Clothing > Fashion Hoodies & Sweatshirts", "Pullover Hoodie|Zip Up Hoodie|Hooded Sweatshirt",
       "hoodie sweatshirt", "Casual|Sport|Heavy|Athletic|Classic", "fleece lined|drawstring hood|kangaroo pocket",
       {"size": _APPAREL_SIZES, "color": _APPAREL_COLORS}, (20, 60)),
    _t("fashion", "sunglasses", "Accessories > Sunglasses & Eyewear Accessories > Sunglasses",
       "Sunglasses|Aviator Sunglasses|Sport Sunglasses", "sunglass", "Retro|Oversized|Square|Round|Classic",
       "polarized lens|uv protection|lightweight frame",
       {"color": ("black", "tortoise brown", "gold", "silver", "blue")}, (10, 60)),
    _t("fashion", "women's maxi dress", "Women > Clothing > Dresses > Casual", "Maxi Dress|Summer Dress|Boho Long Dress",
       "dress", "Floral|Boho|Flowy|Casual|Elegant", "v neck|short sleeve|with pockets|smocked waist",
       {"size": _APPAREL_SIZES, "color": ("black", "navy", "red", "floral white", "sage green", "dusty pink")}, (20, 70)),
    # furniture / home
    _t("furniture", "office chair", "Furniture > Home Office Furniture > Home Office Chairs > Desk Chairs",
       "Office Chair|Desk Chair|Computer Chair", "chair", "Mesh|Swivel|Executive|Mid Back|High Back",
       "lumbar support|adjustable height|padded armrests|rolling casters",
       {"color": ("black", "gray", "white", "blue")}, (50, 250)),
    _t("furniture", "bookshelf", "Furniture > Living Room Furniture > Bookcases", "Bookshelf|Bookcase|Storage Shelf",
       "bookshelf bookcase shelf", "Industrial|Modern|Ladder|Corner|Open", "solid wood|anti tip kit|adjustable shelves",
       {"color": ("white", "black", "walnut brown", "natural oak"), "size": ("3 tier", "4 tier", "5 tier")}, (40, 180)),
    _t("furniture", "throw pillow cover", "Home Decor > Decorative Pillows, Inserts & Covers > Throw Pillow Covers",
       "Throw Pillow Covers|Decorative Pillow Case|Cushion Cover", "pillow cover case cushion",
       "Boho|Velvet|Linen|Farmhouse|Striped", "double sided|hidden zipper|fade resistant",
       {"color": _HOME_COLORS, "size": ("16x16 inch", "18x18 inch", "20x20 inch"), "count": ("2 pack", "4 pack")}, (8, 30)),
    _t("furniture", "coffee table", "Furniture > Living Room Furniture > Tables > Coffee Tables",
       "Coffee Table|Lift Top Coffee Table|Round Coffee Table", "coffee table", "Rustic|Mid Century|Glass|Farmhouse|Modern",
       "hidden storage|scratch resistant|metal frame",
       {"color": ("walnut brown", "black", "white", "natural oak", "gray")}, (60, 250)),
    _t("furniture", "bed sheet set", "Bedding > Sheets & Pillowcases > Sheet & Pillowcase Sets",
       "Bed Sheet Set|Microfiber Sheets|Cotton Sheet Set", "sheet set pillowcase", "Soft|Luxury|Hotel|Cooling|Brushed",
       "deep pocket|wrinkle free|hypoallergenic",
       {"size": ("twin", "full", "queen", "king"), "color": _HOME_COLORS}, (20, 80)),
    _t("furniture", "area rug", "Home Decor > Rugs, Pads & Protectors > Area Rugs", "Area Rug|Shag Rug|Runner Rug",
       "rug runner", "Moroccan|Vintage|Geometric|Abstract|Shaggy", "stain resistant|low pile|non shedding",
       {"size": ("2x3 ft", "4x6 ft", "5x7 ft", "8x10 ft"), "color": _HOME_COLORS}, (30, 200)),
    # electronics
    _t("electronics", "wireless earbuds", "Headphones, Earbuds & Accessories > Earbud Headphones",
       "Wireless Earbuds|Bluetooth Earbuds|True Wireless Earphones", "earbud earphone", "Sport|Mini|Pro|Stereo|Bass",
       "noise cancelling|water resistant|long battery life|touch control",
       {"color": ("black", "white", "navy", "pink")}, (20, 120)),
    _t("electronics", "phone case", "Cell Phones & Accessories > Cases, Holsters & Sleeves > Basic Cases",
       "Phone Case|Protective Case|Slim Phone Cover", "case phone cover", "Clear|Rugged|Matte|Glitter|Leather",
       "shockproof|anti scratch|magnetic ring|raised edges",
       {"color": ("black", "clear white", "navy", "pink", "green"), "model": ("iphone 15", "galaxy s24", "pixel 8")},
       (6, 30)),
    _t("electronics", "usb c cable", "Computers & Accessories > Cables > USB Cables", "USB C Cable|Charging Cable|USB C Cord",
       "cable cord", "Durable|Heavy Duty|Premium|Right Angle|Coiled", "fast charging|nylon braided|data sync|tangle resistant",
       {"length": ("3 ft", "6 ft", "10 ft"), "count": ("1 pack", "2 pack", "5 pack"), "color": ("black", "white", "gray")},
       (6, 25)),
    _t("electronics", "bluetooth speaker", "Portable Audio & Video > Portable Speakers & Docks > Portable Bluetooth Speakers",
       "Bluetooth Speaker|Portable Speaker|Wireless Speaker", "speaker", "Outdoor|Mini|Party|Rugged|Stereo",
       "waterproof|built in microphone|deep bass|long playtime",
       {"color": ("black", "blue", "red", "gray")}, (20, 150)),
    _t("electronics", "laptop stand", "Computers & Accessories > Laptop Accessories > Stands",
       "Laptop Stand|Laptop Riser|Notebook Stand", "laptop stand riser notebook", "Aluminum|Portable|Desktop|Ergonomic|Vented",
       "foldable|height adjustable|anti slip pads",
       {"color": ("silver", "gray", "black", "rose gold")}, (15, 60)),
    _t("electronics", "wireless mouse", "Computers & Accessories > Keyboards, Mice & Accessories > Mice",
       "Wireless Mouse|Bluetooth Mouse|Cordless Mouse", "mouse", "Slim|Ergonomic|Compact|Silent|Optical",
       "silent click|rechargeable battery|usb receiver|adjustable dpi",
       {"color": ("black", "white", "gray", "pink", "blue")}, (8, 45)),
)

GENERIC_NOUNS = ("pack", "set", "kit", "piece", "women", "men", "girl", "home", "office", "kitchen", "bedroom", "travel")
"""Nouns a title may carry besides its type's (tails like ``for Women``, ``Travel Kit``)."""

TITLE_TAILS: Dict[str, Tuple[str, ...]] = {
    "beauty": ("for Women", "for Women and Girls", "Travel Kit", "Gift Set", ""),
    "food": ("Snack Pack", "Family Size", "Value Pack", "", ""),
    "fashion": ("Everyday Wear", "Casual Style", "Gift", "", ""),
    "furniture": ("for Living Room", "for Bedroom", "for Home Office", "", ""),
    "electronics": ("for Home and Travel", "for Office", "2024 Edition", "", ""),
}

DESCRIPTIONS: Dict[str, Tuple[str, ...]] = {
    "beauty": (
        "Made for daily routines at home or on the go.",
        "Our formulas are developed by a small team that cares about every detail.",
        "Each order ships in recyclable packaging.",
        "A favourite of stylists and beginners alike.",
        "Apply as needed and enjoy the result all day.",
    ),
    "food": (
        "Perfect for lunch boxes, road trips and the office pantry.",
        "Sourced from growers we have worked with for years.",
        "Store in a cool, dry place and enjoy within the date on the package.",
        "A simple recipe with ingredients you can pronounce.",
        "Great for sharing with family and friends.",
    ),
    "fashion": (
        "A wardrobe staple you will reach for every week.",
        "Designed to pair with jeans, skirts or joggers.",
        "True to size; see the size chart for measurements.",
        "Made with care in a certified factory.",
        "Comfortable from morning meetings to evening walks.",
    ),
    "furniture": (
        "Brings a warm, finished look to any room.",
        "All hardware and illustrated instructions are included.",
        "Wipe with a damp cloth to keep it looking new.",
        "Built to hold up to daily family life.",
        "Backed by a one year limited warranty.",
    ),
    "electronics": (
        "Works with most phones, tablets and laptops.",
        "Backed by an 18 month warranty and friendly support.",
        "Plug in and start using it in seconds.",
        "Tested for reliability over thousands of cycles.",
        "Includes a quick start guide in the box.",
    ),
}

FEATURE_CLAIMS = (
    "Designed for everyday use and checked for consistent quality.",
    "A detail our customers mention again and again.",
    "One of the reasons shoppers come back for more.",
    "Made to make your day a little easier.",
    "Carefully tested before it leaves our warehouse.",
)

FEATURE_FILLERS = (
    "SATISFACTION PROMISE - Contact us with any question and we will make it right.",
    "GIFT READY - Arrives in a neat box that is ready to wrap.",
    "WHAT YOU GET - Everything shown in the main picture.",
    "THOUGHTFUL DESIGN - Clean lines that suit many styles.",
)

REVIEWS = (
    "5.0 out of 5 stars. Exactly as described, would buy again.",
    "4.0 out of 5 stars. Good value for the price.",
    "3.0 out of 5 stars. Does the job, shipping was slow.",
    "5.0 out of 5 stars. My second order, still happy.",
    "2.0 out of 5 stars. Not what I expected.",
    "4.0 out of 5 stars. Nice quality, runs a little small.",
)

OPTION_PHRASES: Dict[str, str] = {
    "color": "in {} color",
    "size": "in size {}",
    "length": "in {} length",
    "count": "in a {}",
    "flavor": "with {} flavor",
    "scent": "with {} scent",
    "model": "for {}",
}

INSTRUCTION_TEMPLATES = (
    "i need a {type} that is {attrs}{options}, and price lower than {price} dollars",
    "i am looking for a {attrs} {type}{options}, and price lower than {price} dollars",
    "i want a {type} which is {attrs}{options}, and price lower than {price} dollars",
    "find me a {attrs} {type}{options}, and price lower than {price} dollars",
    "i'd like to buy a {type} that's {attrs}{options}, and price lower than {price} dollars",
    "looking for a {type} that is {attrs}{options}, and price lower than {price} dollars",
)
