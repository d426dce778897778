"""The in-memory page cache of the public pages (digest.web.page_cache): its bound, its
order of forgetting, and one render for many threads asking at once."""

from __future__ import annotations

import threading
import time

import pytest

from digest.web.page_cache import ENTRY_OVERHEAD, Page, PageCache


def page(text: str) -> Page:
    return Page.of(text.encode(), "text/plain")


def test_a_page_is_tagged_by_its_bytes() -> None:
    assert page("a").etag == page("a").etag != page("b").etag
    assert page("a").size == 1 + ENTRY_OVERHEAD


def test_the_least_recently_used_goes_first_and_the_total_stays_bounded() -> None:
    cache = PageCache(max_bytes=300)
    for key in "abc":
        cache.put(key, key, 100)
    assert cache.get("a") == "a"  # now b is the least recently used
    cache.put("d", "d", 100)
    assert (cache.get("b"), cache.get("a"), cache.get("c"), cache.get("d")) == (None, "a", "c", "d")
    cache.put("e", "e", 250)  # room for it alone
    assert [cache.get(key) for key in "acde"] == [None, None, None, "e"]
    assert cache.bytes == 250 and len(cache) == 1


def test_a_value_bigger_than_the_cache_is_not_kept() -> None:
    cache = PageCache(max_bytes=100)
    cache.put("a", "a", 50)
    cache.put("big", "big", 101)
    assert (cache.get("a"), cache.get("big")) == ("a", None)


def test_putting_a_key_again_replaces_it_and_its_size() -> None:
    cache = PageCache(max_bytes=100)
    cache.put("a", "old", 60)
    cache.put("a", "new", 30)
    assert (cache.get("a"), cache.bytes, len(cache)) == ("new", 30, 1)


def test_with_no_room_nothing_is_kept_and_everything_made() -> None:
    cache = PageCache(max_bytes=0)
    made: list[int] = []
    for _ in range(3):
        assert cache.get_or_make("k", lambda: made.append(1) or "v", len) == "v"
    assert len(made) == 3 and len(cache) == 0


def test_threads_asking_at_once_wait_for_one_render() -> None:
    cache = PageCache(max_bytes=10_000)
    started = threading.Event()
    release = threading.Event()
    made: list[str] = []

    def render() -> str:
        made.append(threading.current_thread().name)
        started.set()
        release.wait(10)
        return "page"

    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_make("k", render, len)))
        for _ in range(4)
    ]
    threads[0].start()
    assert started.wait(10)
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.05)  # let them reach the wait (a test of waiting, bounded)
    release.set()
    for thread in threads:
        thread.join(10)
    assert results == ["page"] * 4
    assert len(made) == 1


def test_a_failed_render_is_not_kept_and_the_next_ask_renders_again() -> None:
    cache = PageCache(max_bytes=10_000)

    def fail() -> str:
        raise RuntimeError("the store is down")

    with pytest.raises(RuntimeError, match="the store is down"):
        cache.get_or_make("k", fail, len)
    assert cache.get_or_make("k", lambda: "page", len) == "page"
