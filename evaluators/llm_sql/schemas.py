"""The generated datasets, in the style of the LLM-SQL paper's benchmark tables (Rotten Tomatoes movie
reviews, Amazon product reviews, BeerAdvocate, BIRD posts/comments, PDMX score metadata).

A dataset is a few entities (movie, critic, product, ...) whose attributes are fixed per instance, so the
entity's key determines them (functional dependencies: rotten_tomatoes_link -> movie_title -> movie_info),
entities that hang off others (a critic writes for one publisher: critic -> publisher), and per-row
attributes that are mostly unique text (the review). Columns come in the raw files' order, which is not
the order a prefix cache wants."""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable

import numpy as np

from evaluators.llm_sql.text import Words

Gen = Callable[[Words, int], str]  # (words, instance index) -> cell value


@dataclass(frozen=True)
class Entity:
    name: str
    per: float                       # rows per instance on average: instances = rows / per
    attrs: tuple[tuple[str, Gen], ...]
    parents: tuple[str, ...] = ()    # each instance belongs to one instance of each parent (an FD)
    zipf: float = 1.0                # popularity skew of instances over rows
    max_count: int = 1 << 30         # e.g. a closed list of labels


@dataclass(frozen=True)
class Dataset:
    name: str
    entities: tuple[Entity, ...]     # parents before children
    row_entities: tuple[str, ...]    # each row picks one instance of each (and so of their parents)
    row_attrs: tuple[tuple[str, Gen], ...]
    columns: tuple[str, ...]         # the raw file's column order


# ---------------------------------------------------------------- attribute generators

def text(lo: int, hi: int) -> Gen:
    return lambda w, i: w.text(lo, hi)


def title(lo: int, hi: int) -> Gen:
    return lambda w, i: w.title(lo, hi)


def person() -> Gen:
    return lambda w, i: w.person()


def ident(prefix: str, digits: int) -> Gen:
    """A unique id per instance, e.g. B0 followed by digits."""
    return lambda w, i: f"{prefix}{int(w.rng.integers(10 ** (digits - 1), 10 ** digits))}{i}"


def slug(prefix: str) -> Gen:
    return lambda w, i: f"{prefix}{w.slug(1, 4)}_{i}"


def serial(start: int) -> Gen:
    return lambda w, i: str(start + i)


def label(options: tuple[str, ...]) -> Gen:
    """Instance i gets option i: a closed list of labels (set max_count to its length)."""
    return lambda w, i: options[i % len(options)]


def choice(options: tuple[str, ...], weights: tuple[float, ...] | None = None) -> Gen:
    cdf = np.cumsum(np.ones(len(options)) if weights is None else np.asarray(weights, dtype=float))
    cdf = (cdf / cdf[-1]).tolist()
    return lambda w, i: options[min(bisect.bisect_right(cdf, w.rng.random()), len(options) - 1)]


def multi(options: tuple[str, ...], lo: int, hi: int, sep: str = ", ") -> Gen:
    def gen(w: Words, i: int) -> str:
        k = int(w.rng.integers(lo, hi + 1))
        return sep.join(options[j] for j in sorted(w.rng.choice(len(options), size=k, replace=False)))
    return gen


def number(lo: float, hi: float, decimals: int) -> Gen:
    return lambda w, i: f"{w.rng.uniform(lo, hi):.{decimals}f}"


def integer(lo: int, hi: int) -> Gen:
    return lambda w, i: str(int(w.rng.integers(lo, hi + 1)))


def date(first_year: int, last_year: int) -> Gen:
    def gen(w: Words, i: int) -> str:
        return (f"{int(w.rng.integers(first_year, last_year + 1))}-{int(w.rng.integers(1, 13)):02d}"
                f"-{int(w.rng.integers(1, 29)):02d}")
    return gen


# ---------------------------------------------------------------- the datasets

GENRES = ("Action & Adventure", "Comedy", "Drama", "Horror", "Mystery & Suspense", "Romance", "Documentary",
          "Science Fiction & Fantasy", "Animation", "Kids & Family", "Art House & International", "Western")
RATINGS = ("G", "PG", "PG-13", "R", "NR", "NC17")
SCORES = ("", "3/5", "4/5", "2/5", "3.5/4", "B+", "A-", "7/10", "2.5/5", "C")
MAIN_CATEGORIES = ("All Beauty", "Amazon Fashion", "Appliances", "Arts, Crafts & Sewing", "Automotive",
                   "Books", "Cell Phones & Accessories", "Electronics", "Grocery", "Health & Household",
                   "Home & Kitchen", "Industrial & Scientific", "Musical Instruments", "Office Products",
                   "Pet Supplies", "Sports & Outdoors", "Tools & Home Improvement", "Toys & Games")
BEER_STYLES = ("American IPA", "American Pale Ale (APA)", "Russian Imperial Stout", "American Double / Imperial IPA",
               "Belgian Strong Dark Ale", "Hefeweizen", "American Porter", "Saison / Farmhouse Ale",
               "Witbier", "Fruit / Vegetable Beer", "Euro Pale Lager", "American Amber / Red Ale",
               "Tripel", "Oatmeal Stout", "Doppelbock", "Scotch Ale / Wee Heavy", "Gose", "Berliner Weissbier")
HALF_STARS = ("1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0", "4.5", "5.0")
HALF_WEIGHTS = (1, 1, 2, 3, 6, 10, 14, 10, 4)
TAGS = ("python", "r", "regression", "machine-learning", "hypothesis-testing", "bayesian", "time-series",
        "probability", "distributions", "self-study", "mathematical-statistics", "correlation", "anova")
LICENSES = ("CC-BY-4.0", "CC0-1.0", "CC-BY-SA-4.0", "CC-BY-NC-4.0", "All Rights Reserved", "Public Domain")
MUSIC_GENRES = ("classical", "pop", "rock", "folk", "jazz", "soundtrack", "religious", "experimental",
                "world", "electronic", "rnb soul", "country")
FLAGS = ("True", "False")

MOVIES = Dataset(
    "movies",
    entities=(
        Entity("publisher", per=120, attrs=(("publisher_name", title(1, 3)),)),
        Entity("critic", per=25, parents=("publisher",), attrs=(
            ("critic_name", person()), ("top_critic", choice(FLAGS, (1, 3))))),
        Entity("movie", per=15, zipf=0.9, attrs=(
            ("rotten_tomatoes_link", slug("m/")), ("movie_title", title(1, 5)), ("movie_info", text(30, 90)),
            ("genres", multi(GENRES, 1, 3)), ("directors", person()), ("content_rating", choice(RATINGS)),
            ("original_release_date", date(1950, 2020)))),
    ),
    row_entities=("critic", "movie"),
    row_attrs=(("review_type", choice(("Fresh", "Rotten"), (3, 2))), ("review_score", choice(SCORES)),
               ("review_date", date(2000, 2020)), ("review_content", text(8, 40))),
    columns=("rotten_tomatoes_link", "critic_name", "top_critic", "publisher_name", "review_type", "review_score",
             "review_date", "review_content", "movie_title", "movie_info", "genres", "directors",
             "content_rating", "original_release_date"),
)

PRODUCTS = Dataset(
    "products",
    entities=(
        Entity("store", per=60, attrs=(("store", title(1, 3)),)),
        Entity("category", per=200, attrs=(
            ("main_category", choice(MAIN_CATEGORIES)), ("categories", title(2, 6)))),
        Entity("product", per=8, parents=("store", "category"), attrs=(
            ("parent_asin", ident("B0", 7)), ("product_title", title(4, 12)), ("description", text(40, 120)),
            ("price", number(3, 250, 2)), ("average_rating", number(2.5, 5, 1)))),
    ),
    row_entities=("product",),
    row_attrs=(("rating", choice(("1", "2", "3", "4", "5"), (1, 1, 2, 4, 8))), ("title", title(2, 6)),
               ("text", text(10, 60)), ("user_id", ident("AE", 12)), ("timestamp", integer(1_400_000_000,
                                                                                           1_700_000_000)),
               ("helpful_vote", choice(("0", "1", "2", "3", "5", "12"), (30, 8, 4, 2, 1, 1))),
               ("verified_purchase", choice(FLAGS, (5, 1)))),
    columns=("rating", "title", "text", "parent_asin", "user_id", "timestamp", "helpful_vote", "verified_purchase",
             "product_title", "main_category", "categories", "store", "price", "average_rating", "description"),
)

BEER = Dataset(
    "beer",
    entities=(
        Entity("brewery", per=80, attrs=(("beer/brewerId", serial(100)),)),
        Entity("style", per=150, max_count=len(BEER_STYLES), attrs=(("beer/style", label(BEER_STYLES)),)),
        Entity("beer", per=25, parents=("brewery", "style"), attrs=(
            ("beer/name", title(1, 4)), ("beer/beerId", serial(40000)), ("beer/ABV", number(3.5, 13, 1)))),
        Entity("profile", per=40, attrs=(("review/profileName", slug("")),)),
    ),
    row_entities=("beer", "profile"),
    row_attrs=tuple((f"review/{k}", choice(HALF_STARS, HALF_WEIGHTS))
                    for k in ("appearance", "aroma", "palate", "taste", "overall"))
    + (("review/time", integer(1_000_000_000, 1_320_000_000)), ("review/text", text(30, 100))),
    columns=("beer/name", "beer/beerId", "beer/brewerId", "beer/ABV", "beer/style", "review/appearance",
             "review/aroma", "review/palate", "review/taste", "review/overall", "review/time", "review/profileName",
             "review/text"),
)

BIRD = Dataset(
    "bird",
    entities=(
        Entity("owner", per=25, attrs=(("OwnerUserId", serial(1000)),)),
        Entity("post", per=5, parents=("owner",), zipf=0.8, attrs=(
            ("PostId", serial(50000)), ("Title", title(4, 12)), ("Body", text(60, 160)),
            ("Tags", multi(TAGS, 1, 4, "><")), ("PostScore", integer(-2, 60)))),
        Entity("commenter", per=10, attrs=(("UserId", serial(2000)), ("UserDisplayName", person()))),
    ),
    row_entities=("post", "commenter"),
    row_attrs=(("CommentId", integer(100000, 999999)), ("Score", choice(("0", "1", "2", "3", "5"), (20, 6, 3, 1, 1))),
               ("Text", text(8, 45)), ("CreationDate", date(2010, 2014))),
    columns=("CommentId", "PostId", "Score", "Text", "CreationDate", "UserId", "UserDisplayName", "Title", "Body",
             "Tags", "PostScore", "OwnerUserId"),
)

PDMX = Dataset(
    "pdmx",
    entities=(
        Entity("license", per=200, zipf=1.5, max_count=len(LICENSES), attrs=(
            ("license", label(LICENSES)), ("license_url", slug("https://creativecommons.org/licenses/")))),
        Entity("composer", per=40, attrs=(("composername", person()),)),
        Entity("artist", per=20, attrs=(
            ("artistname", person()), ("isuserpro", choice(FLAGS, (1, 4))), ("isuserpublisher", choice(FLAGS, (1, 9))))),
        Entity("song", per=4, parents=("composer", "artist"), attrs=(
            ("songname", title(1, 5)), ("genres", multi(MUSIC_GENRES, 1, 3)))),
    ),
    row_entities=("song", "license"),
    row_attrs=(("path", slug("./data/")), ("title", title(1, 6)), ("rating", number(0, 5, 2)),
               ("nviews", integer(10, 50000)), ("nfavorites", integer(0, 300)),
               ("hascustomaudio", choice(FLAGS, (1, 6))), ("tags", multi(MUSIC_GENRES, 0, 3))),
    columns=("path", "isuserpro", "isuserpublisher", "hascustomaudio", "nviews", "nfavorites", "rating", "title",
             "genres", "tags", "license", "license_url", "songname", "artistname", "composername"),
)

DATASETS: dict[str, Dataset] = {d.name: d for d in (MOVIES, PRODUCTS, BEER, BIRD, PDMX)}
