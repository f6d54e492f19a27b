"""The review page (review_archive.py): `model` decides what the page shows
(pure), `pairs` finds what each removed duplicate duplicates, `thumbs` makes
the cached thumbnails, `sheets` pastes each day's onto one contact sheet,
`render` writes the HTML, `folder` guards the one folder the review
writes, and `build` runs them in order."""
