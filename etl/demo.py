"""Deterministic demo data for the fictional retailer "Acme Home & Garden".

`generate` writes the kind of SOURCE exports a real company has (an org chart
CSV, the loyalty programme's SQLite database, survey-tool CSV exports, HR
engagement waves in CSV and Excel) plus the `sources.toml` that tells the ETL
how to read them. Nothing here writes to the reporting database.

The data are built from latent variables so that the dashboard has true
stories to show rather than noise or hand-edited numbers:

* every member has a latent loyalty that drives their scores, their spend and
  their monthly churn hazard (promoters spend more and churn less);
* every store has a latent employee engagement that drives both its staff's
  engagement answers and its customers' staff/speed ratings, hence CSAT/NPS;
* NPS and CSAT load on the five attribute ratings with fixed weights (staff
  friendliness and speed strongest, value for money weakest) so a key-driver
  analysis recovers a clear order;
* long support waits lower speed ratings and CSAT;
* region West improves NPS over the window and jumps in the last month, when
  an app-only returns process made service faster but took more effort (CES);
* mobile self-service takes more effort than an assisted store visit.

Only `numpy.random.default_rng(seed)` is used for randomness and no file holds
a wall-clock timestamp, so the same arguments give byte-identical files.
"""

from __future__ import annotations

import io
import re
import sqlite3
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.writer.excel import ExcelWriter

__all__ = ["DemoSummary", "default_end_month", "generate"]

# --------------------------------------------------------------------------
# The company
# --------------------------------------------------------------------------

COMPANY = ("ACME", "Acme Home & Garden")
REGIONS = (("R-NORTH", "North"), ("R-SOUTH", "South"), ("R-WEST", "West"))
# (code, city, region code, relative customer base)
STORES = (
    ("S01", "Leeds", "R-NORTH", 1.2),
    ("S02", "York", "R-NORTH", 0.8),
    ("S03", "Newcastle", "R-NORTH", 1.0),
    ("S04", "Manchester", "R-NORTH", 1.3),
    ("S05", "Brighton", "R-SOUTH", 1.0),
    ("S06", "Southampton", "R-SOUTH", 1.1),
    ("S07", "Canterbury", "R-SOUTH", 0.7),
    ("S08", "Oxford", "R-SOUTH", 1.0),
    ("S09", "Bristol", "R-WEST", 1.4),
    ("S10", "Exeter", "R-WEST", 0.9),
    ("S11", "Plymouth", "R-WEST", 1.0),
    ("S12", "Cardiff", "R-WEST", 0.8),
)
STORE_CODES = tuple(s[0] for s in STORES)


@dataclass(frozen=True)
class _Org:
    """The company's regions and stores, and the parts of the stories tied to them: the
    region whose service programme and app-only returns launch (West) and the store too
    small to clear the anonymity threshold in every wave (Cardiff)."""

    regions: tuple[tuple[str, str], ...]
    stores: tuple[tuple[str, str, str, float], ...]

    @cached_property
    def codes(self) -> tuple[str, ...]:
        return tuple(s[0] for s in self.stores)

    @cached_property
    def n(self) -> int:
        return len(self.stores)

    @cached_property
    def store_region(self) -> np.ndarray:
        codes = [r[0] for r in self.regions]
        return np.array([codes.index(s[2]) for s in self.stores])

    @cached_property
    def store_p(self) -> np.ndarray:
        return np.array([s[3] for s in self.stores]) / sum(s[3] for s in self.stores)

    @cached_property
    def west(self) -> int:
        return len(self.regions) - 1

    @cached_property
    def small(self) -> int:
        return self.n - 1


DEFAULT_REGIONS = len(REGIONS)
DEFAULT_STORES = len(STORES)


def _org(regions: int, stores: int) -> _Org:
    """The default company (3 regions, 12 named stores), or a larger one of numbered regions
    and stores: stores split evenly over regions, the last region playing West and the last
    store playing the small one. Store sizes vary by a fixed pattern, not by random draws, so
    a bigger org moves no random number of the rest of the generator."""
    if (regions, stores) == (DEFAULT_REGIONS, DEFAULT_STORES):
        return _Org(REGIONS, STORES)
    width = len(str(regions))
    names = [(f"R-{i + 1:0{width}d}", f"Region {i + 1}") for i in range(regions)]
    names[-1] = (names[-1][0], "West")
    swidth = max(2, len(str(stores)))
    rows = []
    for i in range(stores):
        region = names[i * regions // stores][0]
        size = 0.6 + 0.1 * ((i * 7) % 9)
        rows.append((f"S{i + 1:0{swidth}d}", f"Town {i + 1}", region, size))
    rows[-1] = (*rows[-1][:3], 0.6)
    return _Org(tuple(names), tuple(rows))

SEGMENTS = ("Families", "Young professionals", "Retirees", "Trade")
_SEGMENT_P = np.array([0.35, 0.30, 0.20, 0.15])
# Trade customers buy in bulk and often; retirees buy little online.
_SEG_RATE = np.array([0.10, 0.0, -0.05, 0.35])
_SEG_AMOUNT = np.array([0.10, -0.10, -0.05, 0.50])
_SEG_VALUE = np.array([0.0, 0.10, -0.10, 0.15])
# Transaction channel mix (Store, Web, App) per segment.
_SEG_CHANNEL_P = np.array(
    [[0.68, 0.20, 0.12], [0.50, 0.22, 0.28], [0.82, 0.15, 0.03], [0.75, 0.20, 0.05]]
)
TIERS = ("Bronze", "Silver", "Gold")
TXN_CHANNELS = ("Store", "Web", "App")

# A garden retailer peaks in spring and before Christmas, and at weekends.
_MONTH_FACTOR = np.array([0.75, 0.8, 1.05, 1.3, 1.35, 1.25, 1.1, 1.0, 0.95, 0.9, 1.0, 1.2])
_WEEKDAY_FACTOR = np.array([0.85, 0.85, 0.9, 0.95, 1.05, 1.35, 1.15])  # Mon..Sun
_STORE_HOURS_P = np.array(
    [0, 0, 0, 0, 0, 0, 0, 0, 4, 7, 10, 11, 11, 10, 9, 9, 8, 7, 6, 4, 0, 0, 0, 0], float
)
_ONLINE_HOURS_P = np.array(
    [2, 1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 5, 6, 6, 5, 5, 5, 6, 7, 9, 10, 9, 6, 4], float
)
_SURVEY_HOURS_P = np.array(
    [1, 0, 0, 0, 0, 0, 1, 3, 5, 6, 6, 6, 7, 7, 6, 6, 6, 7, 8, 9, 9, 7, 5, 3], float
)

# Volumes (per member over 24 months) the brief asks for.
_TXN_PER_MEMBER_24M = 15.0
_MEMBER_TXN_SHARE = 0.75
_RESPONSES_PER_MEMBER_24M = 2.2
_NON_MEMBER_RESPONSE_SHARE = 0.15
_RELATIONSHIP_SHARE = 0.20
_CHURN_FLOOR = 0.015  # lowest monthly churn hazard, reached by the most loyal

# --------------------------------------------------------------------------
# Survey vocabulary and the headers the ETL config maps
# --------------------------------------------------------------------------

Q_NPS = "How likely are you to recommend Acme to a friend or colleague?"
Q_CSAT = "Overall, how satisfied were you with your experience?"
Q_CES = "Acme made it easy for me to handle my issue."
ATTRIBUTES = (
    "Staff friendliness",
    "Speed of service",
    "Product availability",
    "Value for money",
    "Ease of website/app",
)
SURVEY_COLUMNS = (
    "Response ID",
    "Submitted",
    "Survey",
    "Member number",
    "Store",
    "Touchpoint",
    "Channel",
    "Device",
    "Interaction",
    Q_NPS,
    Q_CSAT,
    Q_CES,
    *ATTRIBUTES,
    "Wait time (minutes)",
    "Comment",
)
CSAT_LABELS = (
    "Very dissatisfied",
    "Dissatisfied",
    "Neither satisfied nor dissatisfied",
    "Satisfied",
    "Very satisfied",
)
TOUCHPOINTS = ("Store visit", "Online order", "Delivery", "Customer support", "Returns", "Overall")
CHANNELS = ("Store", "Web", "App", "Phone", "Chat", "Email")
DEVICES = ("In person", "Desktop", "Mobile", "Tablet", "Phone")
INTERACTIONS = ("Self-service", "Assisted")
_TP_STORE, _TP_ONLINE, _TP_DELIVERY, _TP_SUPPORT, _TP_RETURNS, _TP_OVERALL = range(6)
_CH_STORE, _CH_WEB, _CH_APP, _CH_PHONE, _CH_CHAT, _CH_EMAIL = range(6)
_DEV_IN_PERSON, _DEV_DESKTOP, _DEV_MOBILE, _DEV_TABLET, _DEV_PHONE = range(5)
_SELF, _ASSISTED = 0, 1
_TRANSACTIONAL_TP_P = np.array([0.42, 0.20, 0.10, 0.16, 0.12])
_SCREEN_P = np.array([0.50, 0.38, 0.12])  # Desktop, Mobile, Tablet on the web
_EMAIL_SCREEN_P = np.array([0.40, 0.50, 0.10])

ENGAGEMENT_ITEMS = (
    "I am proud to work for Acme",
    "I would recommend Acme's products",
    "I have what I need to do my job well",
    "My manager cares about my wellbeing",
    "I see myself working here in two years",
)
Q_ENPS = "How likely are you to recommend Acme as a place to work? (0-10)"
ENGAGEMENT_COLUMNS = ("Employee ID", "Store", "Wave", *ENGAGEMENT_ITEMS, Q_ENPS, "Comment")
_ITEM_BIAS = np.array([0.30, 0.20, -0.10, 0.10, -0.35])

# Score scales: target answer distributions at the baseline, turned into cut
# points on standardised latents. Fixed (not fitted to each run) so that the
# West shift moves West's scores instead of being normalised away.
_NPS_P = (0.02, 0.01, 0.015, 0.02, 0.025, 0.05, 0.05, 0.09, 0.17, 0.22, 0.30)
_CSAT_P = (0.04, 0.06, 0.13, 0.40, 0.37)
_CES_P = (0.03, 0.04, 0.06, 0.10, 0.20, 0.27, 0.30)
_RATING_P = (0.04, 0.08, 0.18, 0.40, 0.30)
_ITEM_P = (0.05, 0.10, 0.20, 0.40, 0.25)
_ENPS_P = (0.02, 0.02, 0.02, 0.03, 0.04, 0.08, 0.09, 0.15, 0.20, 0.17, 0.18)
# Location and spread of each raw latent in the baseline population, measured
# once on a default-size run; dividing by them gives ~N(0, 1) latents.
_NPS_LOC, _NPS_SCALE = 0.08, 1.33
_CSAT_LOC, _CSAT_SCALE = -0.05, 1.08
_CES_LOC, _CES_SCALE = -0.065, 0.91
_ITEM_LOC, _ITEM_SCALE = 0.16, 1.22
_ENPS_LOC, _ENPS_SCALE = 0.13, 1.16

# Weights of the attribute latents in the overall experience: staff and speed
# matter most, value least (the key-driver order the dashboard should find).
_W_STAFF, _W_SPEED, _W_AVAIL, _W_VALUE, _W_DIGITAL = 0.42, 0.36, 0.22, 0.08, 0.20
_ATTR_OFFSET = np.array([0.15, 0.0, -0.05, -0.25, 0.0])

# --------------------------------------------------------------------------
# Comment templates. Some contain commas, quotes, newlines and non-ASCII on
# purpose: real survey exports do, and the CSV reader must cope.
# --------------------------------------------------------------------------

# Where an answer comes from decides what its comment can talk about: nobody parks for a web
# order or waits at a till on the phone. Comments are composed from an opening that fits
# the touchpoint and channel, a sentence on the part of the experience that was best
# (praise) or worst (complaint), and sometimes a closing line; one in eight is in French.
_CONTEXTS = ("store", "web", "app", "delivery", "phone", "chat", "return_store", "return_web",
             "return_app", "overall")
# Words that fill the theme sentences, per context: who served, where, what the wait was.
_WHO = {"store": "the assistant", "web": "customer services", "app": "customer services",
        "delivery": "the driver", "phone": "the adviser", "chat": "the chat agent",
        "return_store": "the lady at the returns desk", "return_web": "customer services",
        "return_app": "customer services", "overall": "the team in {city}"}
_WAIT = {"store": "at the till", "web": "for the order to be confirmed",
         "app": "for the order to be confirmed", "delivery": "for the van",
         "phone": "on hold", "chat": "in the chat queue", "return_store": "at the returns desk",
         "return_web": "for my refund", "return_app": "for my refund",
         "overall": "at the tills"}
_PLACE = {"store": "the {city} store", "web": "the website", "app": "the app",
          "delivery": "the order", "phone": "the phone line", "chat": "the chat",
          "return_store": "the {city} store", "return_web": "the website",
          "return_app": "the app", "overall": "Acme"}
_OPENERS = {
    "store": {"low": ("Visited the {city} store on Saturday.", "Popped into {city} for compost.",
                      "Went to the {city} branch after work."),
              "high": ("Lovely visit to the {city} store.", "Called in at {city} today.",
                       "Great trip to the garden centre in {city}."),
              "mid": ("Quick visit to {city}.", "Went in for a few bits.")},
    "web": {"low": ("Ordered online last week.", "Tried ordering on the website."),
            "high": ("Ordered on the website.", "First online order with you."),
            "mid": ("Ordered a few things online.",)},
    "app": {"low": ("Ordered through the app.", "Used the app for a click & collect order."),
            "high": ("Ordered on the app on my phone.", "Used the app for the first time."),
            "mid": ("Ordered through the app.",)},
    "delivery": {"low": ("My delivery was due on Tuesday.", "Ordered a shed for delivery."),
                 "high": ("Delivery came this morning.", "Had a big delivery of paving."),
                 "mid": ("Delivery arrived.",)},
    "phone": {"low": ("Rang customer services about a missing item.",
                      "Phoned about my order."),
              "high": ("Called about a damaged pot.", "Rang with a question about my order."),
              "mid": ("Phoned customer services.",)},
    "chat": {"low": ("Used the web chat about my refund.", "Tried the online chat."),
             "high": ("Used the chat on the website.", "Asked a question on the live chat."),
             "mid": ("Used the chat.",)},
    "return_store": {"low": ("Took a broken hose back to {city}.",
                             "Returned a faulty mower in store."),
                     "high": ("Returned a pot in {city}.", "Brought some plants back in store."),
                     "mid": ("Returned an item in store.",)},
    "return_web": {"low": ("Returned an order through the website.",),
                   "high": ("Returned an order online.",),
                   "mid": ("Sent an order back.",)},
    "return_app": {"low": ("Had to return a parasol through the app.",
                           "Returned a lamp with the app."),
                   "high": ("Returned something with the app.",),
                   "mid": ("Returned an item through the app.",)},
    "overall": {"low": ("Been a member for years.", "Shop with you most months."),
                "high": ("Been a loyal customer for years.", "Love shopping with Acme."),
                "mid": ("Shop here now and then.", "Member for a couple of years.")},
}
# A sentence may be tagged "ctx,ctx|text": it is said only in those contexts.
_SHOP = "store,return_store,overall"
_DIGITAL = "web,app,return_web,return_app"
_PRAISE = {
    "staff": ("{Who} was lovely and really helpful with my garden plans.",
              f'{_SHOP}|The young man in the paint aisle went "above and beyond" for me.',
              "{Who} was friendly, knowledgeable and patient – couldn’t ask for more.",
              "{Who} knew exactly what I needed."),
    "speed": ("No wait {wait}, brilliant.", f"{_SHOP}|Quick service, even on a busy Saturday.",
              "Super fast, no fuss.", "Everything done quicker than I expected.",
              "delivery|Came a day early, and the driver carried it round the back."),
    "stock": ("store,overall,web,app|Always find what I need at {place}.",
              "Great range of plants, bulbs and tools, all in stock.",
              "web,app,delivery,overall|Everything I ordered was available, even the café "
              "furniture.",
              "Got the compost and the seed trays I wanted."),
    "value": ("Good value – paid £12 less than elsewhere for the same compost.",
              "Fair prices and the loyalty points add up nicely.",
              "The member offers made it a bargain."),
    "app": (f"{_DIGITAL}|{{Place}} is brilliant, it took two minutes.",
            f"{_DIGITAL}|So easy to use, well done.",
            "app,web,overall|Click & collect was ready in an hour, and the app told me.",
            "chat|The chat answered straight away and sorted it there and then.",
            "delivery,overall|The tracking emails were spot on.",
            "store,return_store,phone|Checking stock on the app first saved me a trip."),
}
_COMPLAINT = {
    "staff": ("{Who} was rude and seemed uninterested.",
              f'{_SHOP},phone|Asked for help and was told "not my department". Not good '
              "enough.",
              f"{_SHOP}|Nobody around to help, had to go and find someone myself.",
              "web,app,delivery,phone,chat,return_web,return_app|{Who} didn’t seem to know "
              "anything about the order."),
    "speed": (f"{_SHOP},phone,chat|Waited {{minutes}} minutes {{wait}}, far too long.",
              "Waited far too long {wait}.", "Took too long to sort out.",
              f'{_SHOP}|It was "out the door" busy and one till open.\nPlease open more tills.',
              "delivery|Came three days late and nobody told me."),
    "stock": ("Out of stock again, third time this month.",
              "{Place} said in stock, but there was none.",
              "Compost, seeds and pots all sold out – very disappointing."),
    "value": ("Prices have gone up a lot, £5 more for the same bag of compost.",
              "Too expensive compared with other garden centres, sorry.",
              "web,app,delivery|A £7.95 delivery charge is steep for a small order."),
    "app": ("web,app|{Place} keeps crashing at checkout.",
            "return_app,overall|Returns through the app are a nightmare, so many steps.\n"
            "Why can’t I just go to the store?",
            "app,return_app,overall|Couldn’t log in to the app, had to reset my password "
            "twice.",
            "web,app|{Place} kept timing out when I tried to pay.",
            "chat|The chat kept dropping and I had to start again.",
            "delivery|The tracking link in the email didn’t work.",
            "return_web|The returns form on the website kept failing.",
            "store,return_store,phone|The app said one thing and the shop another."),
}
_NEUTRAL = {
    "store": ("It was fine, nothing special.", "OK overall, but parking was a pain.",
              "Decent, though the signage in store could be clearer.",
              'Fine. The "new look" store is nice, prices a bit high.'),
    "web": ("Did the job.", "Fine, the website could show more photos."),
    "app": ("Worked OK, a bit slow to load.", "Fine. Would like to save my favourites."),
    "delivery": ("Arrived on the day, no time slot though.", "Fine, box was a bit battered."),
    "phone": ("Got there in the end.", "Answered my question, took a while."),
    "chat": ("Helpful enough.", "Got an answer, had to repeat my order number."),
    "return_store": ("Refund done, queue was slow.", "Fine, took my receipt."),
    "return_web": ("Refund came through after a week.", "OK, label was easy to print."),
    "return_app": ("Refund came through eventually.", "OK once I found the returns page."),
    "overall": ("It was fine, nothing special.", "Average, some visits better than others."),
}
_CLOSERS = {"low": ("Please sort it out.", "Not impressed.", "Will shop elsewhere next time.",
                    "Expected better from Acme."),
            "high": ("Thank you!", "Will definitely be back.", "Keep it up.",
                     "Recommended to my neighbour already."),
            "mid": ("Might come back.",)}
# French-speaking customers (border stores, tourists, expats) answer in French.
_FR_OPENERS = {"store": "Passage au magasin de {city}.", "web": "Commande sur le site.",
               "app": "Commande sur l’appli.", "delivery": "Livraison à domicile.",
               "phone": "Appel au service client.", "chat": "Question posée sur le chat.",
               "return_store": "Retour d’un article en magasin.",
               "return_web": "Retour d’une commande.", "return_app": "Retour via l’appli.",
               "overall": "Client depuis des années."}
_FR_PRAISE = {
    "staff": ("Personnel très aimable et de bon conseil.", "Conseiller souriant et patient."),
    "speed": ("Service rapide, aucune attente.", "Tout a été réglé en cinq minutes."),
    "stock": ("Tout était en stock, même le terreau que je cherchais.",),
    "value": ("Bon rapport qualité-prix, et les points fidélité sont appréciables.",),
    "app": (f"{_DIGITAL}|Très pratique, commande en deux minutes.",
            "Simple et efficace, bravo."),
}
_FR_COMPLAINT = {
    "staff": ("Personne pour m’aider, accueil désagréable.",),
    "speed": ("Attente beaucoup trop longue.",
              f"{_SHOP}|Une seule caisse ouverte, vingt minutes de queue.",
              "phone|Resté en attente au téléphone pendant vingt minutes."),
    "stock": ("Rupture de stock encore une fois, très déçu.",),
    "value": ("Les prix ont beaucoup augmenté, c’est dommage.",),
    "app": ("app,return_app|L’application plante au moment de valider.",
            "return_app|Le retour via l’appli est compliqué, trop d’étapes.",
            "Le site ne fonctionne pas bien, j’ai dû recommencer."),
}
_FR_NEUTRAL = ("Correct, sans plus.", "Rien à signaler.", "Bien dans l’ensemble.")
_FR_CLOSERS = {"low": ("Dommage.", "À améliorer."), "high": ("Merci !", "Je reviendrai."),
               "mid": ("Ça ira.",)}


def _fitting(pool: tuple[str, ...], where: str) -> tuple[str, ...]:
    """The sentences of `pool` that can be said in context `where` (untagged ones always)."""
    out = []
    for text in pool:
        tags, sep, body = text.partition("|")
        if not sep:
            out.append(text)
        elif where in tags.split(","):
            out.append(body)
    return tuple(out)


_THEMES = ("staff", "speed", "stock", "value", "app")
_EMPLOYEE_COMMENTS = {
    "positive": (
        "Great team, and my manager really supports me.",
        "Proud of what we do in store, customers notice it.",
        "Good training this year – I feel more confident.",
    ),
    "negative": (
        "We are always short-staffed at weekends.",
        'Too many "quick changes" from head office, nobody explains why.',
        "Pay hasn’t kept up with the cost of living.",
        "Broken equipment takes weeks to fix, e.g. the forklift.",
    ),
    "neutral": (
        "Mostly fine, rotas could be shared earlier.",
        "OK place to work. Would like more chances to progress.",
    ),
}

SOURCES_TOML = """\
# Sources of the demo company "Acme Home & Garden", written by `python -m etl demo`.
# Paths are relative to this file. See README "Sources config" for every key.

[[source]]
name = "org_units"
title = "Stores and regions"
kind = "org"
adapter = "csv"
location = "org_units.csv"
schedule = "0 5 * * *"
[source.columns]
id = "Code"
name = "Name"
kind = "Level"
parent_id = "Parent"
[source.values.kind]
Company = "company"
Region = "region"
Store = "store"

[[source]]
name = "loyalty_members"
title = "Loyalty members"
kind = "loyalty"
entity = "customers"
adapter = "sql"
location = "sqlite:///loyalty.db"
table = "members"
watermark = "updated_at"
schedule = "10 * * * *"
[source.columns]
id = "member_id"
segment = "segment"
tier = "tier"
enrolled_at = "enrolled_on"
home_org_unit_id = "home_store"
[source.constants]
loyalty_member = true

[[source]]
name = "loyalty_transactions"
title = "Loyalty transactions"
kind = "loyalty"
entity = "transactions"
adapter = "sql"
location = "sqlite:///loyalty.db"
table = "transactions"
watermark = "txn_id"
schedule = "10 * * * *"
[source.columns]
txn_id = "txn_id"
customer_id = "member_id"
org_unit_id = "store"
occurred_at = "occurred_at"
channel = "channel"
amount = "amount"
points_earned = "points_earned"
points_redeemed = "points_redeemed"
[source.values.channel]
Store = "store"
Web = "web"
App = "app"

[[source]]
name = "customer_survey"
title = "Customer survey"
kind = "survey"
adapter = "csv"
location = "surveys/*.csv"
encoding = "utf-8-sig"
delimiter = ","
date_format = "%d/%m/%Y %H:%M"
schedule = "20 * * * *"
[source.columns]
response_id = "Response ID"
submitted_at = "Submitted"
survey_kind = "Survey"
customer_id = "Member number"
org_unit_id = "Store"
touchpoint = "Touchpoint"
channel = "Channel"
device = "Device"
interaction = "Interaction"
nps = "How likely are you to recommend Acme to a friend or colleague?"
csat = "Overall, how satisfied were you with your experience?"
ces = "Acme made it easy for me to handle my issue."
wait_minutes = "Wait time (minutes)"
comment = "Comment"
[source.attributes]
staff_friendliness = "Staff friendliness"
speed_of_service = "Speed of service"
product_availability = "Product availability"
value_for_money = "Value for money"
digital_ease = "Ease of website/app"
[source.values.survey_kind]
Relationship = "relationship"
Transactional = "transactional"
[source.values.csat]
"Very dissatisfied" = 1
"Dissatisfied" = 2
"Neither satisfied nor dissatisfied" = 3
"Satisfied" = 4
"Very satisfied" = 5
[source.values.interaction]
"Self-service" = "self_service"
"Assisted" = "assisted"
[source.values.touchpoint]
"Store visit" = "store_visit"
"Online order" = "online_order"
"Delivery" = "delivery"
"Customer support" = "support"
"Returns" = "returns"
"Overall" = "relationship"
[source.values.channel]
Store = "store"
Web = "web"
App = "app"
Phone = "phone"
Chat = "chat"
Email = "email"
[source.values.device]
"In person" = "in_person"
Desktop = "desktop"
Mobile = "mobile"
Tablet = "tablet"
Phone = "phone"

[[source]]
name = "engagement_waves"
title = "Employee engagement waves"
kind = "engagement"
adapter = "file"
location = "engagement/wave_*.*"
date_format = "%Y-%m-%d"
schedule = "0 6 * * 1"
respondent_salt = "acme-demo-salt-3f9c1e7b52d4"
[source.columns]
respondent = "Employee ID"
org_unit_id = "Store"
wave = "Wave"
enps = "How likely are you to recommend Acme as a place to work? (0-10)"
comment = "Comment"
[source.items]
pride = "I am proud to work for Acme"
advocacy = "I would recommend Acme's products"
enablement = "I have what I need to do my job well"
manager_care = "My manager cares about my wellbeing"
intent_to_stay = "I see myself working here in two years"

[[source]]
name = "headcount"
title = "Headcount"
kind = "engagement"
entity = "headcount"
adapter = "csv"
location = "engagement/headcount.csv"
date_format = "%Y-%m-%d"
schedule = "0 6 * * 1"
[source.columns]
org_unit_id = "Store"
wave = "Wave"
headcount = "Headcount"
"""

_END_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoSummary:
    """What `generate` wrote: the window, row counts and every file path."""

    out_dir: Path
    first_month: str
    last_month: str
    org_units: int
    members: int
    transactions: int
    survey_responses: int
    engagement_responses: int
    files: list[Path]


def default_end_month(today: date | None = None) -> str:
    """Last full calendar month before `today` as 'YYYY-MM'.

    `today` defaults to the local date; the current month is never complete,
    so the answer is always the month before today's month.
    """
    today = today or date.today()
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def generate(
    out_dir: Path,
    *,
    seed: int = 42,
    customers: int = 20_000,
    months: int = 24,
    end: str | None = None,
    regions: int = DEFAULT_REGIONS,
    stores: int = DEFAULT_STORES,
    responses_per_member: float = _RESPONSES_PER_MEMBER_24M,
    transactions_per_member: float = _TXN_PER_MEMBER_24M,
) -> DemoSummary:
    """Write all demo source files + sources.toml into out_dir.

    `out_dir` is created if missing and files in it are overwritten. Months
    run from `end` - (`months` - 1) to `end` ("YYYY-MM", default
    `default_end_month()`) inclusive. The same arguments always give the same
    file contents. Survey and engagement wave files left by an earlier run
    with another window are removed, because the ETL reads those folders by
    glob and would otherwise load them too.

    `regions` and `stores` size the org (the default is the 12 named stores in 3 regions);
    `responses_per_member` and `transactions_per_member` are each active member's survey
    answers and purchases over 24 months (non-members add 15% answers and a third more
    purchases). The defaults write exactly the files they always wrote.

    Raises:
        ValueError: if `customers` < 100, `months` < 2, `end` is not 'YYYY-MM', or
            `regions` < 1 or `stores` < 2 x `regions`.
    """
    _validate(customers, months, end)
    if regions < 1 or stores < 2 * regions:
        raise ValueError(f"need at least 1 region and 2 stores per region, got {regions!r} "
                         f"regions and {stores!r} stores")
    if responses_per_member <= 0 or transactions_per_member <= 0:
        raise ValueError("responses_per_member and transactions_per_member must be positive")
    org = _org(regions, stores)
    end = end if end is not None else default_end_month()
    out_dir = Path(out_dir)
    (out_dir / "surveys").mkdir(parents=True, exist_ok=True)
    (out_dir / "engagement").mkdir(parents=True, exist_ok=True)

    cal = _Calendar(end, months)
    rng = np.random.default_rng(seed)
    # Independent child streams: changing one part of the generator does not
    # reshuffle the random numbers of the others.
    r_members, r_txn, r_survey, r_staff, r_store = rng.spawn(5)

    latents = _store_latents(r_store, org)
    members = _members(r_members, customers, cal, org)
    files: list[Path] = [_write_org_units(out_dir, org)]
    txn = _transactions(r_txn, members, cal, org, transactions_per_member)
    files.append(_write_loyalty_db(out_dir / "loyalty.db", members, txn, cal, org))
    responses = _survey_responses(r_survey, members, latents, cal, org, responses_per_member)
    files += _write_surveys(out_dir / "surveys", responses, cal)
    eng_files, n_engagement = _write_engagement(out_dir / "engagement", r_staff, latents, cal,
                                                org)
    files += eng_files
    toml_path = out_dir / "sources.toml"
    toml_path.write_bytes(SOURCES_TOML.encode("utf-8"))
    files.append(toml_path)

    return DemoSummary(
        out_dir=out_dir,
        first_month=cal.month_label(0),
        last_month=cal.month_label(months - 1),
        org_units=1 + len(org.regions) + org.n,
        members=customers,
        transactions=len(txn["ts"]),
        survey_responses=len(responses),
        engagement_responses=n_engagement,
        files=files,
    )


# --------------------------------------------------------------------------
# Calendar helpers
# --------------------------------------------------------------------------


def _validate(customers: int, months: int, end: str | None) -> None:
    if (
        isinstance(customers, bool)
        or not isinstance(customers, (int, np.integer))
        or customers < 100
    ):
        raise ValueError(f"customers must be an integer >= 100, got {customers!r}")
    if isinstance(months, bool) or not isinstance(months, (int, np.integer)) or months < 2:
        raise ValueError(f"months must be an integer >= 2, got {months!r}")
    if end is not None and (not isinstance(end, str) or not _END_RE.fullmatch(end)):
        raise ValueError(f"end must be a month formatted 'YYYY-MM' (e.g. '2026-10'), got {end!r}")


class _Calendar:
    """Days of the window as integer offsets from its first day.

    Times are float day offsets internally; `weights` is the relative retail
    traffic of each day and `cum` its running total, used to place events on
    days in proportion to traffic.
    """

    def __init__(self, end: str, months: int) -> None:
        end_month = np.datetime64(end, "M")
        bounds = np.arange(end_month - (months - 1), end_month + 2, dtype="datetime64[M]")
        self.months = months
        self.month_starts = bounds.astype("datetime64[D]")
        self.day0 = self.month_starts[0]
        self.n_days = int((self.month_starts[-1] - self.day0).astype(int))
        # Offsets of each month's first day, plus the end of the window.
        self.month_offsets = (self.month_starts - self.day0).astype(np.int64)
        days = self.day0 + np.arange(self.n_days)
        cal_month = days.astype("datetime64[M]").astype(int) % 12
        weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
        w = _MONTH_FACTOR[cal_month] * _WEEKDAY_FACTOR[weekday]
        self.weights = w / w.mean()
        self.cum = np.concatenate([[0.0], np.cumsum(self.weights)])
        self.grid = np.arange(self.n_days + 1, dtype=float)
        # Files must not carry the wall clock: derive document dates from `end`.
        nxt = self.month_starts[-1].astype(object)
        self.stamp = datetime(nxt.year, nxt.month, nxt.day, 6, 0, 0)

    def month_label(self, i: int) -> str:
        return str(self.month_starts[i].astype("datetime64[M]"))

    def traffic(self, day_pos: np.ndarray) -> np.ndarray:
        """Cumulative traffic up to a (fractional) day offset."""
        return np.interp(day_pos, self.grid, self.cum)

    def place(self, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Random integer days in [lo, hi) (day offsets), weighted by traffic."""
        c_lo, c_hi = self.traffic(lo), self.traffic(hi)
        u = c_lo + rng.random(len(lo)) * (c_hi - c_lo)
        day = np.floor(np.interp(u, self.cum, self.grid)).astype(np.int64)
        return np.clip(day, np.floor(lo).astype(np.int64), self.n_days - 1)

    def month_of(self, day: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.month_offsets, day, side="right") - 1

    def seconds(self, day: np.ndarray, seconds_in_day: np.ndarray) -> np.ndarray:
        """datetime64[s] from day offsets and seconds since midnight."""
        base = (self.day0 + day).astype("datetime64[s]")
        return base + seconds_in_day.astype("timedelta64[s]")


def _time_of_day(rng: np.random.Generator, n: int, hour_p: np.ndarray) -> np.ndarray:
    hours = rng.choice(24, size=n, p=hour_p / hour_p.sum())
    return hours * 3600 + rng.integers(0, 3600, size=n)


def _choice_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of `probs` (rows sum to 1)."""
    cum = np.cumsum(probs, axis=1)[:, :-1]
    return (rng.random(len(probs))[:, None] >= cum).sum(axis=1)


def _cuts(probs: tuple[float, ...]) -> np.ndarray:
    """Cut points on a N(0, 1) latent giving the answer distribution `probs`."""
    cum = np.cumsum(probs)[:-1]
    return np.array([NormalDist().inv_cdf(float(c)) for c in cum])


def _scale(z: np.ndarray, probs: tuple[float, ...], low: int) -> np.ndarray:
    return low + np.searchsorted(_cuts(probs), z)


def _store_latents(rng: np.random.Generator, org: _Org) -> dict[str, np.ndarray]:
    """Per-store latents: employee engagement and stock reliability.

    Engagement is standardised across the 12 stores so that every seed has a
    real spread between well- and badly-run stores to show.
    """
    eng = rng.normal(size=org.n)
    eng = (eng - eng.mean()) / eng.std()
    return {"engagement": eng, "stock": rng.normal(size=org.n)}


# --------------------------------------------------------------------------
# Org units
# --------------------------------------------------------------------------


def _write_org_units(out_dir: Path, org: _Org) -> Path:
    rows = [(COMPANY[0], COMPANY[1], "Company", "")]
    rows += [(code, name, "Region", COMPANY[0]) for code, name in org.regions]
    rows += [(code, city, "Store", region) for code, city, region, _ in org.stores]
    path = out_dir / "org_units.csv"
    frame = pd.DataFrame(rows, columns=["Code", "Name", "Level", "Parent"])
    frame.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    return path


# --------------------------------------------------------------------------
# Loyalty programme
# --------------------------------------------------------------------------


def _members(rng: np.random.Generator, n: int, cal: _Calendar,
             org: _Org) -> dict[str, np.ndarray]:
    loyalty = rng.normal(size=n)
    segment = rng.choice(len(SEGMENTS), size=n, p=_SEGMENT_P)
    home = rng.choice(org.n, size=n, p=org.store_p)
    # Churn: a constant monthly hazard that falls with loyalty, never below a
    # floor. The active membership is kept in steady state, so a dashboard
    # trend is never mere survivorship (the disloyal churning away):
    # * a pre-window member is still active when the window opens with
    #   probability floor / hazard, the steady-state share of an endless history
    #   (the others are dormant: enrolled, no longer shopping);
    # * members enrol during the window at floor x pre-window members a month,
    #   which is exactly the outflow of that steady state.
    hazard = _CHURN_FLOOR + 0.008 * np.exp(-1.0 * loyalty)
    in_window = rng.random(n) < _CHURN_FLOOR * cal.months / (1 + _CHURN_FLOOR * cal.months)
    enrol_day = np.where(
        in_window,
        rng.integers(0, cal.n_days, size=n),
        -rng.integers(1, 3 * 365 + 1, size=n),
    )
    active = in_window | (rng.random(n) < _CHURN_FLOOR / hazard)
    start = np.maximum(enrol_day, 0).astype(float)
    # Memoryless: an active member's remaining time does not depend on tenure.
    churn = start + rng.exponential(30.44 / hazard)
    stop = np.where(active, np.minimum(churn, cal.n_days), start)
    tier_score = 0.6 * loyalty + 1.5 * _SEG_AMOUNT[segment] + rng.normal(0, 0.6, size=n)
    tier = np.searchsorted(np.quantile(tier_score, [0.55, 0.85]), tier_score)
    opt_in = (rng.random(n) < 0.5 + 0.1 * (loyalty > 0) + 0.05 * (segment == 1)).astype(int)
    # Last profile change (tier review, address...): between enrolment and the
    # end of the window, so a watermark load sees recent updates.
    first_update = np.maximum(enrol_day, -365)
    since = np.floor(rng.random(n) ** 0.5 * (cal.n_days - first_update)).astype(np.int64)
    upd_day = np.minimum(first_update + since, cal.n_days - 1)
    upd = cal.seconds(upd_day, rng.integers(7 * 3600, 23 * 3600, size=n))
    return {
        "id": np.array([f"M{i:06d}" for i in range(1, n + 1)], dtype=object),
        "loyalty": loyalty,
        "segment": segment,
        "home": home,
        "enrol_day": enrol_day,
        "start": start,
        "stop": stop,
        "tier": tier,
        "opt_in": opt_in,
        "updated": upd,
    }


def _transactions(
    rng: np.random.Generator, m: dict[str, np.ndarray], cal: _Calendar, org: _Org,
    per_member: float,
) -> dict[str, np.ndarray]:
    n = len(m["id"])
    scale = cal.months / 24
    # Loyal members come more often and buy more: this, plus churn, is what
    # makes promoters worth more than detractors.
    propensity = np.exp(0.3 * m["loyalty"] + _SEG_RATE[m["segment"]])
    exposure = np.maximum(cal.traffic(m["stop"]) - cal.traffic(m["start"]), 0.0)
    target = per_member * _MEMBER_TXN_SHARE * n * scale
    rate = target / float((propensity * exposure).sum())
    counts = rng.poisson(rate * propensity * exposure)
    who = np.repeat(np.arange(n), counts)
    day = cal.place(rng, m["start"][who], m["stop"][who])
    channel = _choice_rows(rng, _SEG_CHANNEL_P[m["segment"][who]])
    away = rng.random(len(who)) < 0.15
    store = np.where(away, rng.choice(org.n, size=len(who), p=org.store_p), m["home"][who])
    mu = (
        np.log(31.5)
        + 0.12 * m["loyalty"][who]
        + _SEG_AMOUNT[m["segment"][who]]
        + 0.15 * (channel > 0)
    )
    amount = np.maximum(np.round(rng.lognormal(mu, 0.65), 2), 0.99)
    earned = np.floor(amount).astype(np.int64)
    redeemed = np.where(rng.random(len(who)) < 0.06, rng.integers(2, 11, size=len(who)) * 100, 0)

    n_anon = round(len(who) * (1 - _MEMBER_TXN_SHARE) / _MEMBER_TXN_SHARE)
    a_day = cal.place(rng, np.zeros(n_anon), np.full(n_anon, float(cal.n_days)))
    a_channel = np.where(rng.random(n_anon) < 0.88, 0, 1)  # guests can't use the app
    a_store = rng.choice(org.n, size=n_anon, p=org.store_p)
    a_amount = np.maximum(np.round(rng.lognormal(np.log(30.0), 0.65, size=n_anon), 2), 0.99)

    all_channel = np.concatenate([channel, a_channel])
    tod = np.where(
        all_channel == 0,
        _time_of_day(rng, len(all_channel), _STORE_HOURS_P),
        _time_of_day(rng, len(all_channel), _ONLINE_HOURS_P),
    )
    ts = cal.seconds(np.concatenate([day, a_day]), tod)
    # txn_id must grow with time, as in the real system.
    order = np.argsort(ts, kind="stable")
    member = np.concatenate([m["id"][who], np.full(n_anon, None, dtype=object)])
    return {
        "ts": ts[order],
        "member": member[order],
        "store": np.concatenate([store, a_store])[order],
        "channel": all_channel[order],
        "amount": np.concatenate([amount, a_amount])[order],
        "earned": np.concatenate([earned, np.zeros(n_anon, np.int64)])[order],
        "redeemed": np.concatenate([redeemed, np.zeros(n_anon, np.int64)])[order],
    }


def _fmt_seconds(ts: np.ndarray) -> list[str]:
    return pd.Series(ts).dt.strftime("%Y-%m-%d %H:%M:%S").tolist()


def _write_loyalty_db(
    path: Path, m: dict[str, np.ndarray], t: dict[str, np.ndarray], cal: _Calendar, org: _Org
) -> Path:
    path.unlink(missing_ok=True)
    enrolled = pd.Series(cal.day0 + m["enrol_day"]).dt.strftime("%Y-%m-%d").tolist()
    store_codes = np.array(org.codes, dtype=object)
    member_rows = zip(
        m["id"].tolist(),
        enrolled,
        np.array(TIERS, dtype=object)[m["tier"]].tolist(),
        np.array(SEGMENTS, dtype=object)[m["segment"]].tolist(),
        store_codes[m["home"]].tolist(),
        m["opt_in"].tolist(),
        _fmt_seconds(m["updated"]),
        strict=True,
    )

    def txn_rows(lo: int, hi: int) -> zip:
        # A million sales at a time: 30 million rows as Python tuples would not fit.
        return zip(
            range(lo + 1, hi + 1),
            t["member"][lo:hi].tolist(),
            store_codes[t["store"][lo:hi]].tolist(),
            _fmt_seconds(t["ts"][lo:hi]),
            np.array(TXN_CHANNELS, dtype=object)[t["channel"][lo:hi]].tolist(),
            t["amount"][lo:hi].tolist(),
            t["earned"][lo:hi].tolist(),
            t["redeemed"][lo:hi].tolist(),
            strict=True,
        )

    con = sqlite3.connect(path)
    try:
        # A fresh file is rebuilt from scratch on failure, so skip the journal.
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        con.execute(
            """CREATE TABLE members (
                member_id TEXT PRIMARY KEY,
                enrolled_on TEXT NOT NULL,
                tier TEXT NOT NULL CHECK (tier IN ('Bronze', 'Silver', 'Gold')),
                segment TEXT NOT NULL,
                home_store TEXT NOT NULL,
                email_opt_in INTEGER NOT NULL CHECK (email_opt_in IN (0, 1)),
                updated_at TEXT NOT NULL
            )"""
        )
        con.execute(
            """CREATE TABLE transactions (
                txn_id INTEGER PRIMARY KEY,
                member_id TEXT NULL REFERENCES members (member_id),
                store TEXT NOT NULL,
                occurred_at TEXT NOT NULL,
                channel TEXT NOT NULL CHECK (channel IN ('Store', 'Web', 'App')),
                amount REAL NOT NULL,
                points_earned INTEGER NOT NULL,
                points_redeemed INTEGER NOT NULL
            )"""
        )
        con.executemany("INSERT INTO members VALUES (?, ?, ?, ?, ?, ?, ?)", member_rows)
        n_txn = len(t["ts"])
        for lo in range(0, n_txn, 1_000_000):
            con.executemany("INSERT INTO transactions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            txn_rows(lo, min(lo + 1_000_000, n_txn)))
        con.execute("CREATE INDEX ix_transactions_occurred_at ON transactions (occurred_at)")
        con.commit()
    finally:
        con.close()
    return path


# --------------------------------------------------------------------------
# Customer survey
# --------------------------------------------------------------------------


def _survey_responses(
    rng: np.random.Generator,
    m: dict[str, np.ndarray],
    stores: dict[str, np.ndarray],
    cal: _Calendar,
    org: _Org,
    per_member: float,
) -> pd.DataFrame:
    """All survey responses of the window as the survey tool would export them."""
    n_members = len(m["id"])
    # Members answer only while active (enrolled and not churned).
    exposure = np.maximum(cal.traffic(m["stop"]) - cal.traffic(m["start"]), 0.0)
    target = per_member * n_members * cal.months / 24
    counts = rng.poisson(exposure * target / float(exposure.sum()))
    who = np.repeat(np.arange(n_members), counts)
    n_mem = len(who)
    n_non = round(n_mem * _NON_MEMBER_RESPONSE_SHARE / (1 - _NON_MEMBER_RESPONSE_SHARE))
    n = n_mem + n_non
    is_member = np.arange(n) < n_mem

    day = np.concatenate(
        [
            cal.place(rng, m["start"][who], m["stop"][who]),
            cal.place(rng, np.zeros(n_non), np.full(n_non, float(cal.n_days))),
        ]
    )
    minute = _time_of_day(rng, n, _SURVEY_HOURS_P) // 60
    month = cal.month_of(day)
    # Non-members are a bit less attached to the brand than the average member.
    loyalty = np.concatenate([m["loyalty"][who], rng.normal(-0.3, 1.0, size=n_non)])
    segment = np.concatenate(
        [m["segment"][who], rng.choice(len(SEGMENTS), size=n_non, p=_SEGMENT_P)]
    )
    home = np.concatenate([m["home"][who], rng.choice(org.n, size=n_non, p=org.store_p)])
    # Mostly the home store, sometimes another store of the same region.
    u = rng.random(n)
    region_of = org.store_region
    sizes = np.bincount(region_of)
    if (sizes == sizes[0]).all():
        same_region = np.array([np.flatnonzero(region_of[s] == region_of) for s in range(org.n)])
        neighbour = same_region[home, rng.integers(0, same_region.shape[1], size=n)]
    else:
        by_region = np.argsort(region_of, kind="stable")
        first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        r = region_of[home]
        neighbour = by_region[first[r] + rng.integers(0, sizes[r])]
    store = np.where(
        u < 0.85, home, np.where(u < 0.95, neighbour, rng.choice(org.n, size=n, p=org.store_p))
    )
    west = region_of[store] == org.west
    last = month == cal.months - 1
    west_launch = west & last
    progress = month / (cal.months - 1)

    rel = is_member & (rng.random(n) < _RELATIONSHIP_SHARE / (1 - _NON_MEMBER_RESPONSE_SHARE))
    tp = np.where(rel, _TP_OVERALL, rng.choice(5, size=n, p=_TRANSACTIONAL_TP_P))
    ch, dev, inter = _channels(rng, tp, west_launch)

    # Waiting: support calls/chats, and the till queue on store visits. West's
    # new process answers faster in its launch month.
    wait = np.full(n, np.nan)
    sup = tp == _TP_SUPPORT
    shop = tp == _TP_STORE
    sup_median = np.where(ch == _CH_PHONE, 7.0, 4.5) * np.where(west_launch, 0.6, 1.0)
    wait[sup] = rng.lognormal(np.log(sup_median[sup]), 0.75)
    wait[shop] = rng.lognormal(np.log(np.where(west_launch, 2.1, 3.0)[shop]), 0.6)
    wait = np.round(np.minimum(wait, 95.0), 1)
    wait_pen = np.zeros(n)
    wait_pen[sup] = 0.07 * (np.minimum(wait[sup], 40.0) - 4.0)
    wait_pen[shop] = 0.08 * (np.minimum(wait[shop], 20.0) - 3.0)

    eng = stores["engagement"][store]
    mobile_self = (dev == _DEV_MOBILE) & (inter == _SELF)
    a_staff = 0.35 * eng + 0.25 * loyalty + rng.normal(0, 0.85, n)
    a_speed = (
        0.2 * eng
        + 0.15 * loyalty
        - wait_pen
        + west * 0.35 * progress  # West's service programme: steadily faster
        + west_launch * 0.7
        + rng.normal(0, 0.85, n)
    )
    a_avail = 0.45 * stores["stock"][store] + 0.15 * loyalty + rng.normal(0, 0.9, n)
    a_value = 0.1 * loyalty + _SEG_VALUE[segment] + rng.normal(0, 0.95, n)
    a_digital = (
        0.15 * loyalty
        - 0.25 * (dev == _DEV_MOBILE)
        - 0.5 * (west_launch & (tp == _TP_RETURNS))
        + rng.normal(0, 0.9, n)
    )
    attrs = np.stack([a_staff, a_speed, a_avail, a_value, a_digital], axis=1)
    applicable = np.stack(
        [
            rel | (inter == _ASSISTED),
            np.ones(n, bool),
            rel | (tp == _TP_STORE) | (tp == _TP_ONLINE),
            rel | (tp == _TP_STORE) | (tp == _TP_ONLINE),
            rel | np.isin(ch, [_CH_WEB, _CH_APP, _CH_CHAT, _CH_EMAIL]),
        ],
        axis=1,
    )
    weights = np.array([_W_STAFF, _W_SPEED, _W_AVAIL, _W_VALUE, _W_DIGITAL])
    tp_effect = np.array([0.0, 0.05, -0.05, -0.25, -0.2, 0.0])[tp]
    incident = rng.random(n) < 0.05
    experience = (
        (attrs * applicable * weights).sum(axis=1)
        + 0.3 * loyalty
        + 0.08 * eng
        + tp_effect
        - 0.5 * wait_pen
        - 1.3 * incident
        - 0.3 * mobile_self
        + rng.normal(0, 0.5, n)
    )
    nps_latent = (
        experience
        + (0.35 + 0.2 * rel) * loyalty
        + west * 0.15 * progress
        + west_launch * 0.3
        + rng.normal(0, 0.55, n)
    )
    csat_latent = experience + rng.normal(0, 0.45, n)
    ease_effect = np.select(
        [
            mobile_self,
            tp == _TP_STORE,
            (tp == _TP_ONLINE) & (dev != _DEV_MOBILE),
            tp == _TP_SUPPORT,
            tp == _TP_RETURNS,
        ],
        [-0.55, 0.15, 0.1, np.where(ch == _CH_PHONE, -0.2, -0.1), -0.15],
        0.0,
    )
    # The app-only returns process: every West customer is now routed through
    # the app (returns hardest hit), which costs effort.
    launch_effort = west_launch * ~rel * (0.45 + 0.5 * (tp == _TP_RETURNS))
    ces_latent = 0.35 * experience + ease_effect - launch_effort + rng.normal(0, 0.8, n)

    nps = _scale((nps_latent - _NPS_LOC) / _NPS_SCALE, _NPS_P, 0).astype(float)
    csat = _scale((csat_latent - _CSAT_LOC) / _CSAT_SCALE, _CSAT_P, 1).astype(float)
    ces = _scale((ces_latent - _CES_LOC) / _CES_SCALE, _CES_P, 1).astype(float)
    ratings = np.stack(
        [_scale(attrs[:, k] + _ATTR_OFFSET[k], _RATING_P, 1) for k in range(len(ATTRIBUTES))],
        axis=1,
    ).astype(float)
    nps[rng.random(n) < 0.02] = np.nan
    # Every response keeps at least one score: the survey tool drops empty ones.
    csat[(rng.random(n) < 0.03) & ~np.isnan(nps)] = np.nan
    ces[rel] = np.nan
    ratings[~applicable | (rng.random((n, len(ATTRIBUTES))) < 0.03)] = np.nan

    comment = _comments(
        rng, nps, csat, attrs, applicable, wait, store, west_launch & (tp == _TP_RETURNS), tp, ch,
        [s[1] for s in org.stores],
    )

    submitted = cal.seconds(day, minute * 60)
    frame = pd.DataFrame(
        {
            "ts": submitted,
            "Survey": np.where(rel, "Relationship", "Transactional"),
            "Member number": np.where(
                is_member, np.concatenate([m["id"][who], np.full(n_non, "", object)]), ""
            ),
            "Store": np.array(org.codes, dtype=object)[store],
            "Touchpoint": np.array(TOUCHPOINTS, dtype=object)[tp],
            "Channel": np.array(CHANNELS, dtype=object)[ch],
            "Device": np.array(DEVICES, dtype=object)[dev],
            "Interaction": np.where(
                inter < 0, "", np.array(INTERACTIONS, dtype=object)[np.maximum(inter, 0)]
            ),
            Q_NPS: pd.array(nps, dtype="Int64"),
            Q_CSAT: pd.Series(
                np.array(CSAT_LABELS, dtype=object)[np.nan_to_num(csat, nan=1).astype(int) - 1]
            ).where(~np.isnan(csat), ""),
            Q_CES: pd.array(ces, dtype="Int64"),
            **{name: pd.array(ratings[:, k], dtype="Int64") for k, name in enumerate(ATTRIBUTES)},
            "Wait time (minutes)": [("" if np.isnan(w) else f"{w:.1f}") for w in wait],
            "Comment": comment,
        }
    )
    frame = frame.sort_values("ts", kind="stable").reset_index(drop=True)
    if n <= 4_500_000:
        ids = rng.choice(9_000_000, size=n, replace=False) + 1_000_000
        frame.insert(0, "Response ID", [f"R_{i:07d}" for i in ids])
    else:  # a large company's survey tool numbers its answers with one more digit
        ids = rng.choice(90_000_000, size=n, replace=False) + 10_000_000
        frame.insert(0, "Response ID", [f"R_{i:08d}" for i in ids])
    frame.insert(1, "Submitted", frame["ts"].dt.strftime("%d/%m/%Y %H:%M"))
    return frame


def _channels(
    rng: np.random.Generator, tp: np.ndarray, west_launch: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Channel, device and interaction codes that fit each touchpoint."""
    n = len(tp)
    u = rng.random(n)
    screen = np.array([_DEV_DESKTOP, _DEV_MOBILE, _DEV_TABLET])
    web_dev = screen[rng.choice(3, size=n, p=_SCREEN_P)]
    mail_dev = screen[rng.choice(3, size=n, p=_EMAIL_SCREEN_P)]
    chat_dev = screen[rng.choice(3, size=n, p=np.array([0.45, 0.45, 0.10]))]
    returns_ch = np.where(u < 0.6, _CH_STORE, np.where(u < 0.8, _CH_WEB, _CH_APP))
    # From its launch West takes returns through the app only.
    returns_ch = np.where(west_launch, _CH_APP, returns_ch)
    ch = np.select(
        [
            tp == _TP_STORE,
            tp == _TP_ONLINE,
            tp == _TP_DELIVERY,
            tp == _TP_SUPPORT,
            tp == _TP_RETURNS,
        ],
        [
            _CH_STORE,
            np.where(u < 0.55, _CH_WEB, _CH_APP),
            _CH_EMAIL,
            np.where(u < 0.6, _CH_PHONE, _CH_CHAT),
            returns_ch,
        ],
        _CH_EMAIL,
    )
    dev = np.select(
        [ch == _CH_STORE, ch == _CH_WEB, ch == _CH_APP, ch == _CH_PHONE, ch == _CH_CHAT],
        [_DEV_IN_PERSON, web_dev, _DEV_MOBILE, _DEV_PHONE, chat_dev],
        mail_dev,
    )
    inter = np.select(
        [tp == _TP_OVERALL, (tp == _TP_ONLINE) | ((tp == _TP_RETURNS) & (ch != _CH_STORE))],
        [-1, _SELF],
        _ASSISTED,
    )
    return ch, dev, inter


def _context(tp: int, ch: int) -> str:
    """Which of `_CONTEXTS` an answer's touchpoint and channel are."""
    if tp == _TP_STORE:
        return "store"
    if tp == _TP_ONLINE:
        return "app" if ch == _CH_APP else "web"
    if tp == _TP_DELIVERY:
        return "delivery"
    if tp == _TP_SUPPORT:
        return "chat" if ch == _CH_CHAT else "phone"
    if tp == _TP_RETURNS:
        return {_CH_STORE: "return_store", _CH_APP: "return_app"}.get(ch, "return_web")
    return "overall"


def _comments(
    rng: np.random.Generator,
    nps: np.ndarray,
    csat: np.ndarray,
    attrs: np.ndarray,
    applicable: np.ndarray,
    wait: np.ndarray,
    store: np.ndarray,
    app_returns: np.ndarray,
    tp: np.ndarray,
    ch: np.ndarray,
    cities: list[str],
) -> list[str]:
    """Free-text comments whose tone follows the scores, whose topic is the best (praise) or
    worst (complaint) part of the experience, and whose words fit the touchpoint and
    channel; about one in eight in French."""
    n = len(nps)
    low = (nps <= 6) | (csat <= 2)
    high = ~low & ((nps >= 9) | (np.isnan(nps) & (csat >= 4)))
    p = np.where(low, 0.32, np.where(high, 0.2, 0.12))
    has = rng.random(n) < p
    # Complaints name the worst part of the experience, praise the best.
    masked = np.where(applicable, attrs, np.nan)
    worst = np.nanargmin(masked, axis=1)
    best = np.nanargmax(masked, axis=1)
    worst = np.where(wait > 15, 1, worst)
    worst = np.where(app_returns, 4, worst)
    pick = rng.random(n)
    # The wording draws come from their own generator, seeded from the main one's draws:
    # the words can change without moving any number generated after them.
    words = np.random.default_rng([int(v * 2**32) for v in pick[:8]])
    out: list[str] = []
    for i in range(n):
        if not has[i]:
            out.append("")
            continue
        tone = "low" if low[i] else ("high" if high[i] else "mid")
        where = _context(int(tp[i]), int(ch[i]))
        theme = _THEMES[worst[i]] if tone == "low" else _THEMES[best[i]]
        u = words.random(4)

        def one(pool: tuple[str, ...], x: float) -> str:
            return pool[int(x * len(pool))]

        if u[0] < 0.12:  # French
            pool = (_FR_COMPLAINT[theme] if tone == "low" else
                    _FR_PRAISE[theme] if tone == "high" else _FR_NEUTRAL)
            parts = [_FR_OPENERS[where] if u[1] < 0.5 else "",
                     one(_fitting(pool, where), u[2]),
                     one(_FR_CLOSERS[tone], u[3]) if u[3] < 0.4 else ""]
        else:
            pool = (_COMPLAINT[theme] if tone == "low" else
                    _PRAISE[theme] if tone == "high" else _NEUTRAL[where])
            parts = [one(_OPENERS[where][tone], u[1]) if u[1] < 0.55 else "",
                     one(_fitting(pool, where), u[2]),
                     one(_CLOSERS[tone], u[3]) if u[3] < 0.45 else ""]
        text = " ".join(part for part in parts if part)
        minutes = int(wait[i]) if not np.isnan(wait[i]) and wait[i] > 15 else 20 + int(u[3] * 25)
        who, place = _WHO[where], _PLACE[where]
        text = text.format(Who=who[0].upper() + who[1:], who=who, wait=_WAIT[where],
                           Place=place[0].upper() + place[1:], place=place, minutes=minutes,
                           city="{city}")
        out.append(text.format(city=cities[store[i]]))
    return out


def _write_surveys(folder: Path, frame: pd.DataFrame, cal: _Calendar) -> list[Path]:
    for stale in folder.glob("responses_*.csv"):
        stale.unlink()
    years = frame["ts"].dt.year
    first_year = int(str(cal.month_starts[0])[:4])
    last_year = int(str(cal.month_starts[-2])[:4])
    paths = []
    for year in range(first_year, last_year + 1):
        path = folder / f"responses_{year}.csv"
        # Survey tools export Excel-friendly CSV: UTF-8 with BOM, CRLF lines.
        frame.loc[years == year, list(SURVEY_COLUMNS)].to_csv(
            path, index=False, encoding="utf-8-sig", lineterminator="\r\n"
        )
        paths.append(path)
    return paths


# --------------------------------------------------------------------------
# Employee engagement
# --------------------------------------------------------------------------


def _write_engagement(
    folder: Path, rng: np.random.Generator, stores: dict[str, np.ndarray], cal: _Calendar,
    org: _Org,
) -> tuple[list[Path], int]:
    for stale in [*folder.glob("wave_*.csv"), *folder.glob("wave_*.xlsx")]:
        stale.unlink()
    wave_idx = [i for i in range(cal.months) if int(cal.month_label(i)[5:]) % 3 == 0]
    waves = [f"{cal.month_label(i)}-01" for i in wave_idx]
    rosters = _rosters(rng, stores, len(waves), org)
    counts = _respondent_counts(rng, rosters, org)

    paths: list[Path] = []
    total = 0
    headcount_rows = []
    for w, wave in enumerate(waves):
        rows = []
        for s in range(org.n):
            ids, latent = rosters[w][s]
            headcount_rows.append((org.codes[s], wave, len(ids)))
            chosen = np.sort(rng.choice(len(ids), size=counts[w, s], replace=False))
            rows += _employee_answers(rng, org.codes[s], wave, ids[chosen], latent[chosen])
        total += len(rows)
        # Odd waves (1st, 3rd...) come from HR as Excel, even ones as CSV.
        if w % 2 == 0:
            path = folder / f"wave_{wave[:7]}.xlsx"
            _write_xlsx(path, rows, cal.stamp)
        else:
            path = folder / f"wave_{wave[:7]}.csv"
            pd.DataFrame(rows, columns=list(ENGAGEMENT_COLUMNS)).astype(
                {c: "Int64" for c in (*ENGAGEMENT_ITEMS, Q_ENPS)}
            ).to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
        paths.append(path)
    head_path = folder / "headcount.csv"
    pd.DataFrame(headcount_rows, columns=["Store", "Wave", "Headcount"]).to_csv(
        head_path, index=False, encoding="utf-8", lineterminator="\n"
    )
    paths.append(head_path)
    return paths, total


def _rosters(
    rng: np.random.Generator, stores: dict[str, np.ndarray], n_waves: int, org: _Org
) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Staff (IDs and latent engagement) of every store at every wave, with turnover."""
    if n_waves == 0:
        return []
    pool = iter(
        # A pool sized for the default 12 stores, one more such pool per 12 stores beyond.
        (rng.choice(90_000, size=min(90_000, (600 + 120 * n_waves) * -(-org.n // 12)),
                    replace=False) + 10_000).tolist()
    )

    def hire(s: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        ids = np.array([f"E{next(pool):05d}" for _ in range(k)], dtype=object)
        return ids, 0.45 * stores["engagement"][s] + rng.normal(0, 0.8, size=k)

    current = []
    for s in range(org.n):
        size = int(rng.integers(7, 9)) if s == org.small else int(rng.integers(20, 46))
        current.append(hire(s, size))
    out = [list(current)]
    for _ in range(1, n_waves):
        nxt = []
        for s, (ids, latent) in enumerate(current):
            if s == org.small:
                target = int(rng.integers(7, 9))
            else:
                target = int(np.clip(len(ids) + rng.integers(-2, 3), 20, 45))
            # The disengaged leave more often.
            stays = rng.random(len(ids)) > 0.07 * np.exp(
                -0.6 * (latent - 0.45 * stores["engagement"][s])
            )
            ids, latent = ids[stays], latent[stays]
            if len(ids) > target:
                keep = np.sort(rng.choice(len(ids), size=target, replace=False))
                ids, latent = ids[keep], latent[keep]
            new_ids, new_latent = hire(s, target - len(ids))
            nxt.append((np.concatenate([ids, new_ids]), np.concatenate([latent, new_latent])))
        current = nxt
        out.append(list(current))
    return out


def _respondent_counts(
    rng: np.random.Generator, rosters: list[list[tuple[np.ndarray, np.ndarray]]], org: _Org
) -> np.ndarray:
    n_waves = len(rosters)
    size = np.array(
        [[len(rosters[w][s][0]) for s in range(org.n)] for w in range(n_waves)], dtype=np.int64
    )
    rate = rng.uniform(0.6, 0.9, size=size.shape)
    rate[:, org.small] = rng.uniform(0.45, 0.8, size=n_waves)
    counts = rng.binomial(size, rate)
    # A few Cardiff staff always answer, so the store shows up (suppressed).
    small = np.maximum(counts[:, org.small], 2)
    # Cardiff must fall under the anonymity threshold of 5 in some wave and
    # clear it in another, so both paths of the rule are exercised.
    if n_waves and (small >= 5).all():
        small[int(np.argmin(small))] = 4
    if n_waves > 1 and (small < 5).all():
        w = int(np.argmax(small))
        small[w] = min(5, size[w, org.small])
    counts[:, org.small] = small
    return counts


def _employee_answers(
    rng: np.random.Generator, store: str, wave: str, ids: np.ndarray, latent: np.ndarray
) -> list[list[object]]:
    k = len(ids)
    now = latent + rng.normal(0, 0.35, size=k)
    raw = now[:, None] + _ITEM_BIAS[None, :] + rng.normal(0, 0.7, size=(k, len(ENGAGEMENT_ITEMS)))
    items = _scale((raw - _ITEM_LOC) / _ITEM_SCALE, _ITEM_P, 1)
    blank = rng.random(items.shape) < 0.02
    enps = _scale((now + rng.normal(0, 0.6, size=k) - _ENPS_LOC) / _ENPS_SCALE, _ENPS_P, 0)
    has_comment = rng.random(k) < 0.15
    pick = rng.random(k)
    rows: list[list[object]] = []
    for i in range(k):
        comment = ""
        if has_comment[i]:
            tone = "positive" if enps[i] >= 9 else "negative" if enps[i] <= 6 else "neutral"
            pool = _EMPLOYEE_COMMENTS[tone]
            comment = pool[int(pick[i] * len(pool))]
        answers = [None if blank[i, j] else int(items[i, j]) for j in range(len(ENGAGEMENT_ITEMS))]
        rows.append([str(ids[i]), store, wave, *answers, int(enps[i]), comment])
    return rows


def _write_xlsx(path: Path, rows: list[list[object]], stamp: datetime) -> None:
    """Write one sheet `Responses` with byte-identical output for identical rows."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Responses"
    ws.append(list(ENGAGEMENT_COLUMNS))
    for row in rows:
        # Empty string would become an empty text cell; None leaves it blank.
        ws.append([None if v == "" else v for v in row])
    wb.properties.creator = "Acme People Survey"
    wb.properties.created = stamp
    wb.properties.modified = stamp
    # Workbook.save() stamps `modified` with the wall clock and the zip
    # entries with the current time, so write through ExcelWriter and then
    # re-pack the archive with a fixed entry date.
    buf = io.BytesIO()
    ExcelWriter(wb, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED)).save()
    fixed = (stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second)
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=fixed)
            entry.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(entry, src.read(info.filename))
