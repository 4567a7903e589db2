"""A 10,000-document help centre for the shop the realistic traffic asks about (fixed seed).

Every document shares vocabulary with the traffic's questions (shipping, sizes, refunds, countries,
products), so each chat message finds many candidate chunks and the passages reach the prompt: the
knowledge base does its full work on every request rather than finding nothing.
"""
import random

PRODUCTS = ["rain jacket", "hiking boots", "waterproof tent", "merino base layer", "insulated parka", "sleeping bag",
            "trekking poles", "down vest", "softshell trousers", "trail runners", "daypack", "headlamp",
            "fleece jumper", "gaiters", "camping stove", "water filter", "sun hat", "wool socks", "bivvy bag",
            "climbing harness"]
COUNTRIES = ["Norway", "Finland", "Canada", "Germany", "France", "Spain", "Italy", "Sweden", "Denmark", "Austria",
             "Switzerland", "Ireland", "Portugal", "Poland", "the Netherlands", "Belgium", "Iceland", "Japan",
             "Australia", "the United Kingdom"]
TOPICS = {
    "Shipping": ["Parcels with the {p} leave our warehouse within one working day.",
                 "Delivery to {c} takes {n} working days; the courier emails a tracking link.",
                 "Customs duties for {c} are paid by the recipient on delivery."],
    "Returns and exchanges": ["You can return the {p} within 30 days if it is unused.",
                              "An exchange for another size of the {p} ships free of charge once we receive the return.",
                              "Returns from {c} use a prepaid label printed from your account."],
    "Refunds": ["Refunds reach the original payment method within {n} working days.",
                "A duplicate charge for the {p} is cancelled by our payments team, who confirm by email.",
                "Store credit never expires and covers any order shipped to {c}."],
    "Discount codes": ["Codes apply to full-price items only, so a reduced {p} is excluded.",
                       "A code is rejected at checkout when it has expired or the basket is under {n}0 euros.",
                       "One code per order; codes cannot be combined with the {c} launch offer."],
    "Care": ["Wash the {p} at 30 degrees inside out and let it dry flat.",
             "Merino and wool garments shrink in a tumble dryer; dry the {p} on a rack.",
             "Reproof the {p} with a spray after every {n} washes."],
    "Sizing and warmth": ["The {p} runs true to size; pick the larger size to layer underneath.",
                          "Rated comfort for the {p} is minus {n} degrees with a base layer.",
                          "Customers in {c} wear the {p} through the winter with a fleece under it."],
    "Travel": ["The {p} folds to {n}5 cm and fits carry-on luggage.",
               "Airlines in {c} accept the {p} in cabin baggage when it is packed in its bag.",
               "Gas canisters for a {p} cannot fly; buy them at your destination."],
}


def documents(count=10_000, seed=11):
    rng = random.Random(seed)
    docs = []
    for i in range(count):
        topic = rng.choice(list(TOPICS))
        product, country = rng.choice(PRODUCTS), rng.choice(COUNTRIES)
        sentences = [s.format(p=product, c=country, n=rng.randint(2, 9)) for s in TOPICS[topic]]
        extra = [s.format(p=rng.choice(PRODUCTS), c=rng.choice(COUNTRIES), n=rng.randint(2, 9))
                 for s in TOPICS[rng.choice(list(TOPICS))]]
        body = " ".join(sentences) + "\n\n" + " ".join(rng.sample(extra, 2))
        docs.append({"id": f"help-{i}", "title": f"{topic}: {product} ({country})", "body": body,
                     "url": f"https://shop.example/help/{i}"})
    return docs
