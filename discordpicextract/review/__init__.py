"""The review page (review_archive.py): `model` decides what the page shows
(pure), `pairs` finds what each removed duplicate duplicates, `thumbs` makes
the cached thumbnails, `render` writes the HTML, `folder` guards the one
folder the review writes, and `build` runs them in order."""
