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
from datetime import date
from pathlib import Path

from discordpicextract import fileops

PLOT_SOFTWARE = "DiscordPicExtract quality_check_timestamps"
# The x axis's tick labels as drawn, kept in the PNG (a reader can tell it
# is a date axis without parsing pixels).
AXIS_KEY = "XTickLabels"


@dataclass(frozen=True)
class Band:
    start: date
    end: date
    label: str


@dataclass
class Timeline:
    title: str
    zone: str              # the market zone, for the y axis label
    session: tuple         # (start, end) seconds of the day, both inside
    days: dict = field(default_factory=dict)   # {market date: seconds of day of every file}
    wrong: list = field(default_factory=list)  # [(market date, seconds)] --verify found wrong
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


_EPOCH = date(1970, 1, 1).toordinal()  # matplotlib's date numbers count days from it


def _day_number(day: date) -> float:
    """matplotlib's number for a date, without converting 100,000 datetimes."""
    return float(day.toordinal() - _EPOCH)


def _draw(axes, timeline, mdates):
    start, end = timeline.session
    axes.axhspan(start / 3600, end / 3600, color="tab:green", alpha=0.12, label="trading session")
    groups: dict = {False: ([], []), True: ([], [])}  # outside hours? -> (x, y)
    for day, seconds in sorted(timeline.days.items()):
        number = _day_number(day)
        for second in seconds:
            x, y = groups[not start <= second <= end]
            x.append(number)
            y.append(second / 3600)
    for (label, colour), (x, y) in zip((("inside hours", "tab:blue"), ("outside hours", "tab:red")),
                                       (groups[False], groups[True])):
        if x:
            axes.scatter(x, y, s=9, color=colour, label=label)
    if timeline.wrong:
        axes.scatter([_day_number(day) for day, _s in timeline.wrong], [s / 3600 for _d, s in timeline.wrong],
                     s=40, facecolors="none", edgecolors="black", linewidths=0.8,
                     label="name is not the post time (--verify)")
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
