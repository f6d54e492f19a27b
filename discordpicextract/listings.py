"""One listing per folder per pipeline run.

`main.py --pipeline` runs its steps in one process, and they list the same
three folders about a dozen times (dedupe its source and output, one per
day, the date check, the market check twice, the review page). Inside
`shared()`, a folder listed again is answered from its last listing when
it holds the very same entries: the same names, in the same order, each
the same kind (a file or not). That is all a listing reads (names, never
contents), so the answer is what listing it again would give, whoever
wrote to the folder meanwhile and however coarse its modification time.
Looking costs one pass over the names, a fraction of a listing (no name
parsed, no record made). A folder holding a symbolic link is always listed
afresh: what a link stands for can change elsewhere.
"""
import contextlib
import os
from pathlib import Path

from discordpicextract import messages, naming


class _Memo:
    def __init__(self, list_images):
        self._list_images = list_images
        self._known: dict = {}  # (cwd, folder) -> (entries, FolderListing)

    def __call__(self, folder) -> naming.FolderListing:
        key = (os.getcwd(), str(Path(folder)))
        seen = _look(folder)
        known = self._known.pop(key, None)
        if seen is not None and known is not None and known[0] == seen:
            self._known[key] = known
            return _copy(known[1])
        listing = self._list_images(folder)
        if seen is not None and _look(folder) == seen:  # nothing changed while it was listed
            self._known[key] = (seen, listing)
        return _copy(listing)


def _look(folder):
    """`folder`'s entries as (name, is a file), in directory order; None
    when it cannot be read or holds a link."""
    try:
        with os.scandir(folder) as entries:
            seen = [None if entry.is_symlink() else (entry.name, entry.is_file()) for entry in entries]
    except OSError:
        return None
    return None if None in seen else seen


def _copy(listing: naming.FolderListing) -> naming.FolderListing:
    """A listing of its own for each caller (a caller may sort or extend
    its lists); the image records themselves are shared, never changed."""
    return naming.FolderListing(list(listing.images), list(listing.unparsed), list(listing.not_files))


@contextlib.contextmanager
def shared():
    """Within the block, every step's naming.list_images lists a folder
    once while it stays the same, and messages.csv is parsed once while its
    bytes stay the same (messages.kept_rows)."""
    outer = naming.set_listing_memo(_Memo(naming.list_images_afresh))
    try:
        with messages.kept_rows():
            yield
    finally:
        naming.set_listing_memo(outer)
