"""Tags: the labels users put on runs (`git exp run --tag`, `git exp tag`)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from gitexp.errors import InvalidNameError
from gitexp.ids import printable
from gitexp.record import valid_unicode

TAG_PATTERN = re.compile(r"[^\s,\x00-\x1f\x7f]{1,100}\Z")


def validate_tags(tags: Sequence[str]) -> list[str]:
    """The tags without repeats, first seen first; InvalidNameError names a bad one."""
    for tag in tags:
        if not TAG_PATTERN.match(tag) or valid_unicode(tag) != tag:
            raise InvalidNameError(
                f"invalid tag '{printable(tag, limit=100)}': no spaces, commas or control "
                "characters, at most 100 characters"
            )
    return list(dict.fromkeys(tags))
