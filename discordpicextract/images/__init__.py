"""What the suite knows about image files: `integrity` (is this a complete,
decodable image? one check for the downloader and for dedupe), `phash`
(perceptual hashes), `cache` (dedupe's hash cache), `workers` (the process
pool that spreads checks and hashes over the cores)."""
