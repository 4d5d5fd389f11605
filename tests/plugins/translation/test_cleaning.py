"""Pair cleaning: every reason counted, control characters fixed, duplicates dropped."""

from __future__ import annotations

from torchsuite.plugins.translation.cleaning import BloomFilter, Cleaner, CleaningRules


def test_each_reason_is_counted() -> None:
    c = Cleaner(
        CleaningRules(min_words=1, max_words=6, max_ratio=2.0, dedup=True, dedup_capacity=1000)
    )
    pairs = [
        ("ein hund", "a dog"),  # kept
        ("ein hund", "a dog"),  # duplicate
        ("", "nothing"),  # empty
        ("\x07\x08", "bell"),  # control characters only
        ("eins zwei drei vier fünf sechs sieben", "one two three four five six seven"),  # long
        ("ja", "yes I do think so indeed"),  # ratio (6 words vs 1)
        ("eine\x00 katze", "a cat"),  # kept after removing \x00
        ("  viel   platz ", "much  space"),  # kept, whitespace collapsed
    ]
    kept = [c.check(s, t) for s, t in pairs]
    assert kept[0] == ("ein hund", "a dog")
    assert kept[6] == ("eine katze", "a cat")
    assert kept[7] == ("viel platz", "much space")
    r = c.report()
    assert r["read"] == 8 and r["kept"] == 3
    assert r["dropped"] == {
        "control_chars": 1,
        "duplicate": 1,
        "empty": 1,
        "ratio": 1,
        "too_long": 1,
    }
    assert r["fixed"] == {"control_chars": 2}


def test_bloom_filter_has_no_false_negatives_and_few_false_positives() -> None:
    bloom = BloomFilter(capacity=2000, error_rate=0.01)
    items = [f"pair {i}".encode() for i in range(2000)]
    assert not any(bloom.add(x) for x in items[:1]) and all(bloom.add(x) for x in items[:1])
    for x in items[1:]:
        bloom.add(x)
    assert all(x in bloom for x in items)  # every inserted item is found again
    fresh = sum(f"other {i}".encode() in bloom for i in range(2000))
    assert fresh < 60  # ~1% (20) expected at capacity
