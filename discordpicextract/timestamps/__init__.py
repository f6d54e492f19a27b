"""Name times and the truth: the zone a folder's names are written in
(`zone`), wall-time conversion between zones (`convert`), post times from
Discord snowflakes and matching files to messages (`truth`), and periods
estimated against the trading session (`periods`). Pure logic and small
reads; the scripts print."""
