"""The timeline plot: when anything went wrong, not only at what hour.

Date on the x axis, market time of day on the y axis, every file a dot;
the trading session shaded, outside-hours files in red, files `--verify`
found wrong ringed, each period of names off by the same amount shaded and
labelled. Written through a temp file, and it replaces only an earlier plot
of ours (tagged in its PNG metadata), never a chart, a log or other file.
"""
import errno
import os
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from discordpicextract import fileops

PLOT_SOFTWARE = "DiscordPicExtract quality_check_timestamps"
# The x axis's tick labels as drawn, kept in the PNG (a reader can tell it
# is a date axis without parsing pixels).
AXIS_KEY = "XTickLabels"


@dataclass(frozen=True)
class Dot:
    market_time: datetime  # naive market time
    outside: bool
    wrong: bool = False    # --verify: the name is not the post time


@dataclass(frozen=True)
class Band:
    start: date
    end: date
    label: str


@dataclass
class Timeline:
    title: str
    zone: str              # the market zone, for the y axis label
    session: tuple         # (start hours, end hours) as floats
    dots: list = field(default_factory=list)   # [Dot]
    bands: list = field(default_factory=list)  # [Band]


def is_our_plot(path) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.info.get("Software") == PLOT_SOFTWARE
    except (OSError, UnidentifiedImageError, ValueError):
        return False


def save_timeline(timeline: Timeline, path) -> Path:
    """Draw `timeline` to the PNG at `path`; FileExistsError when `path`
    holds anything but an earlier plot of ours."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.exists() and not is_our_plot(path):
        raise FileExistsError(errno.EEXIST, "exists and is not a plot written by this tool; not replaced")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(12, 6))
    try:
        _draw(axes, timeline, mdates)
        figure.autofmt_xdate()
        figure.canvas.draw()  # the tick labels exist only once drawn
        labels = " ".join(label.get_text() for label in axes.get_xticklabels() if label.get_text())
        temp = fileops.temp_path_beside(path)
        try:
            figure.savefig(temp, format="png", dpi=100,
                           metadata={"Software": PLOT_SOFTWARE, AXIS_KEY: labels})
            os.chmod(temp, fileops.new_file_mode())  # the temp file is private; the plot is not
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    finally:
        plt.close(figure)
    return path


def _hours(moment: datetime) -> float:
    return moment.hour + moment.minute / 60 + moment.second / 3600


_EPOCH = date(1970, 1, 1).toordinal()  # matplotlib's date numbers count days from it


def _day_number(day: date) -> float:
    """matplotlib's number for a date, without converting 100,000 datetimes."""
    return float(day.toordinal() - _EPOCH)


def _draw(axes, timeline, mdates):
    start, end = timeline.session
    axes.axhspan(start, end, color="tab:green", alpha=0.12, label="trading session")
    groups = (("inside hours", "tab:blue", [d for d in timeline.dots if not d.outside]),
              ("outside hours", "tab:red", [d for d in timeline.dots if d.outside]))
    for label, colour, dots in groups:
        if dots:
            axes.scatter([_day_number(d.market_time.date()) for d in dots],
                         [_hours(d.market_time) for d in dots], s=9, color=colour, label=label)
    wrong = [d for d in timeline.dots if d.wrong]
    if wrong:
        axes.scatter([_day_number(d.market_time.date()) for d in wrong],
                     [_hours(d.market_time) for d in wrong], s=40, facecolors="none", edgecolors="black",
                     linewidths=0.8, label="name is not the post time (--verify)")
    for band in timeline.bands:
        left, right = _day_number(band.start) - 0.5, _day_number(band.end) + 0.5
        axes.axvspan(left, right, color="tab:orange", alpha=0.15)
        axes.text((left + right) / 2, 23.3, band.label, ha="center", va="top", fontsize=8)
    axes.set_ylim(0, 24)
    axes.set_yticks(range(0, 25, 2))
    axes.set_ylabel(f"Time of day ({timeline.zone})")
    axes.set_xlabel("Date")
    axes.xaxis_date()
    axes.xaxis.set_major_locator(mdates.AutoDateLocator())
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    axes.set_title(timeline.title)
    axes.legend(loc="lower right", fontsize=8)
