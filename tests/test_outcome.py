"""The crawl outcome and its exit status: pure logic, no reactor."""

import pytest

from crawler.outcome import (
    DEAD_LETTERS,
    INCOMPLETE,
    INTERRUPTED,
    NOTHING_FOUND,
    OK,
    DeadLetterLimit,
    judge,
)

GOOD = {
    "finish_reason": "finished",
    "catalog/list_pages": 25,
    "products/discovered": 300,
    "products/saved": 290,
    "products/dead_lettered": 0,
    "products/lost": 0,
    "products/identity_holds": True,
    "store/failed": 0,
}


def test_a_complete_crawl_is_ok():
    outcome = judge(GOOD)
    assert (outcome.status, outcome.name) == (OK, "ok")
    assert "300 products discovered" in outcome.reason


@pytest.mark.parametrize("reason", ["shutdown", "cancelled", None])
def test_an_interrupted_crawl(reason):
    outcome = judge({**GOOD, "finish_reason": reason})
    assert outcome.status == INTERRUPTED and repr(reason) in outcome.reason


def test_a_user_limit_is_not_an_interruption():
    assert judge({**GOOD, "finish_reason": "closespider_itemcount"}).status == OK


def test_site_unreachable_and_nothing_found():
    down = judge({"finish_reason": "finished", "dlq/added/stage/list": 1})
    assert down.status == NOTHING_FOUND and "site unreachable" in down.reason and "1 list page" in down.reason
    empty = judge({"finish_reason": "finished", "catalog/list_pages": 3, "products/discovered": 0})
    assert empty.status == NOTHING_FOUND and "no product link" in empty.reason


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"products/lost": 10, "products/identity_holds": False}, "10 product(s) lost"),
        ({"store/failed": 5}, "5 product write(s) did not commit"),
        ({"dlq/failed": 2}, "2 dead letter(s) could not be stored"),
        ({"dlq/added/stage/list": 3}, "3 list page(s) never crawled"),
        ({"dlq/added/stage/list": 2, "dlq/list_pages": [4, 9]}, "never crawled (dead-lettered; pages 4, 9)"),
        ({"products/identity_holds": False, "products/identity": "discovered 3 != ..."}, "unaccounted"),
        ({"catalog/expected_products": 312}, "discovered 300 of the 312 products the site's list states"),
    ],
)
def test_incomplete_crawls(change, words):
    outcome = judge({**GOOD, **change})
    assert outcome.status == INCOMPLETE and words in outcome.reason


def test_incomplete_wins_over_dead_letters_and_interrupted_over_all():
    stats = {**GOOD, "store/failed": 1, "products/dead_lettered": 9}
    assert judge(stats).status == INCOMPLETE
    assert judge({**stats, "finish_reason": "shutdown"}).status == INTERRUPTED


def test_dead_letters_over_the_limit():
    stats = {**GOOD, "products/dead_lettered": 6}
    assert judge(stats).status == DEAD_LETTERS
    assert judge(stats, DeadLetterLimit.parse(6)).status == OK
    assert judge(stats, DeadLetterLimit.parse("2%")).status == OK  # 2% of 300 = 6
    assert judge(stats, DeadLetterLimit.parse("1%")).status == DEAD_LETTERS
    assert "MAX_DEAD_LETTERS=1%" in judge(stats, DeadLetterLimit.parse("1%")).reason


@pytest.mark.parametrize("bad", ["-1", "abc", "150%", "x%"])
def test_bad_dead_letter_limits(bad):
    with pytest.raises(ValueError, match="MAX_DEAD_LETTERS"):
        DeadLetterLimit.parse(bad)


def test_more_products_than_the_site_states_is_fine_and_a_limit_is_not_judged():
    assert judge({**GOOD, "catalog/expected_products": 290}).status == OK  # the catalogue grew
    limited = {**GOOD, "finish_reason": "closespider_itemcount", "catalog/expected_products": 5000}
    assert judge(limited).status == OK


def test_products_an_earlier_run_ended_count_as_found():
    # an incremental run on an unchanged catalogue, or a resumed run with nothing left to do
    nothing_new = {"finish_reason": "finished", "catalog/list_pages": 2, "products/carried": 40}
    outcome = judge(nothing_new)
    assert outcome.status == OK and "40 ended by earlier runs" in outcome.reason
    # the site's stated count is checked against discovered + carried
    stated = {**GOOD, "catalog/expected_products": 310, "products/carried": 10}
    assert judge(stated).status == OK
    short = judge({**stated, "products/carried": 5})
    assert short.status == INCOMPLETE and "(+5 from earlier runs) of the 310" in short.reason
