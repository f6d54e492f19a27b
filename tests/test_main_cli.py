"""main.py's command line: prompts and their order, flags, exit codes, a real
subprocess run, and the --demo end to end."""
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from download_helpers import GUILD, ROOT, ago, images_in, run_main

import config
import main
from discordpicextract import cli


def test_prompts_come_in_order_and_answers_are_shown_but_not_the_token(world, capsys, monkeypatch):
    world.post(ago(hours=1), "c.png")
    monkeypatch.delenv("DISCORD_USER_TOKEN")
    monkeypatch.setenv(cli.INTERACTIVE_ENV, "1")
    # token, channel name, guild, days (Enter = default), output folder
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{world.token}\n#spx-realtime-aws\n{GUILD}\n\nprompted\n"))
    code, out, err = run_main(capsys)
    assert code == 0, err
    prompts = [main.PROMPT_TOKEN, main.PROMPT_CHANNEL, main.PROMPT_GUILD, main.PROMPT_DAYS, main.PROMPT_OUTPUT]
    positions = [err.index(p) for p in prompts]  # prompts go to stderr: `> log` never hides one
    assert positions == sorted(positions)
    assert f"Server: {GUILD}" in out and f"Days back: {config.DEFAULT_DAYS}" in out
    assert len(images_in("prompted")) == 1
    assert world.token not in out + err


def test_no_guild_prompt_for_a_channel_id_and_defaults_without_a_terminal(world, capsys, monkeypatch):
    world.post(ago(days=config.DEFAULT_DAYS - 1), "in_default_window.png")
    world.post(ago(days=config.DEFAULT_DAYS + 1), "too_old.png")
    code, out, err = run_main(capsys, "--channel", world.channel["id"])
    assert code == 0, err
    assert main.PROMPT_GUILD not in out + err
    assert [n.split("_", 2)[2] for n in images_in(config.DEFAULT_OUTPUT_DIR)] == ["in_default_window.png"]


@pytest.mark.parametrize("env, argv, expected", [
    ({}, ["--channel", "123456789012345678"], "DISCORD_USER_TOKEN"),
    ({"DISCORD_USER_TOKEN": "tok-x"}, [], "--channel"),
    ({"DISCORD_USER_TOKEN": "tok-x"}, ["--channel", "spx-realtime-aws"], "--guild"),
    ({"DISCORD_USER_TOKEN": "tok-x"}, ["--channel", "1", "--days", "0"], "--days"),
    ({"DISCORD_USER_TOKEN": "tok-x"}, ["--channel", "1", "--days", "two"], "--days"),
    ({"DISCORD_USER_TOKEN": "tok-x"}, ["--channel", "1", "--days", "1e9"], "at most 36500"),
    ({"DISCORD_USER_TOKEN": "tok-x"}, ["--channel", "1", "--days", "1000000"], "at most 36500"),
    ({"DISCORD_USER_TOKEN": "tok-x"}, ["--channel", "1", "--workers", "0"], "--workers"),
    ({"DISCORD_USER_TOKEN": "tok-x"}, ["--channel", "1", "--timezone", "Mars/Olympus"], "--timezone"),
    ({"DISCORD_USER_TOKEN": "tok-x"}, ["--channel", "1", "--timezone", "localtime"], "this machine's setting"),
    ({"DISCORD_USER_TOKEN": "tok-x"}, ["--token", "tok-x"], "unrecognized arguments"),
])
def test_missing_or_bad_values_without_a_terminal_exit_2(capsys, monkeypatch, env, argv, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, out, err = run_main(capsys, *argv)
    assert code == 2
    assert err.startswith("error:") and err.count("\n") == 1 and expected in err
    assert "tok-x" not in out + err


def test_output_folder_that_is_a_file_exits_2(world, capsys):
    Path("taken").write_text("not a folder")
    code, _, err = run_main(capsys, "--channel", world.channel["id"], "--output", "taken")
    assert code == 2 and "is a file" in err


def test_subprocess_run_with_env_and_no_terminal(world):
    world.post(ago(hours=2), "one.png")
    world.post(ago(hours=1), "two.png")
    env = dict(os.environ, DISCORD_API_BASE=world.emu.api_base, DISCORD_USER_TOKEN=world.token)
    env.pop(cli.INTERACTIVE_ENV, None)
    run = subprocess.run([sys.executable, str(ROOT / "main.py"), "--channel", world.channel["id"],
                          "--days", "1", "--output", "sub"],
                         cwd=os.getcwd(), env=env, stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert len(images_in("sub")) == 2 and "Downloaded: 2" in run.stdout
    assert world.token not in run.stdout + run.stderr
    assert "Downloading" not in run.stderr  # no progress bar without a terminal
    missing = subprocess.run([sys.executable, str(ROOT / "main.py"), "--days", "1"], cwd=os.getcwd(), env=env,
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "--channel" in missing.stderr
    assert world.token not in missing.stdout + missing.stderr


def test_demo_runs_end_to_end_then_the_follow_up_steps(capsys, monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(main, "DEMO_STEPS", [lambda folder: seen.append(folder) or 0,
                                             lambda folder: 1])
    code, out, err = run_main(capsys, "--demo", "--output", tmp_path / "demo")
    assert code == 1  # the second step's exit code
    assert seen == [str(tmp_path / "demo")]
    assert main.PROMPT_CHANNEL + "spx-realtime-aws" in out and main.PROMPT_GUILD + GUILD in out
    assert "Errors: 0" in out and len(images_in(tmp_path / "demo" / config.DEFAULT_OUTPUT_DIR)) > 100
    assert "DISCORD_API_BASE" not in os.environ


def run_main_step(capsys, script, *argv):
    import importlib

    code = importlib.import_module(script).main([str(a) for a in argv])
    capsys.readouterr()
    return code


def test_demo_runs_the_whole_pipeline_and_replaces_only_its_own_folders(capsys, tmp_path):
    download = tmp_path / "demo" / "spx-realtime-aws"
    code, out, err = run_main(capsys, "--demo", "--no-progress", "--output", tmp_path / "demo")
    assert code == 0, err
    # everything inside the demo's own folder, nothing beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == sorted(
        [*config.PIPELINE_FOLDERS, config.PLOT_FILE, config.REVIEW_DIR])
    # ... and it ends with the review page's path
    page = tmp_path / "demo" / config.REVIEW_DIR / "index.html"
    assert out.rstrip().endswith(f"Review page: {page}") and page.stat().st_size > 10_000
    clean, daily = tmp_path / "demo" / config.CLEAN_OUTPUT_DIR, tmp_path / "demo" / config.ONE_PER_DAY_DIR
    downloaded, kept, per_day = images_in(download), images_in(clean), images_in(daily)
    assert len(downloaded) > len(kept) > len(per_day) > 15
    assert {name[:10] for name in kept} == {name[:10] for name in per_day}
    for heading in ("Deduplication Summary:", "Extracted", "Unique Dates Analysis",
                    "Quality Check: Timestamps Outside Trading Hours", "QUALITY CHECK REMINDER"):
        assert heading in out
    # a stretch named in UTC, as the old tool did: verify finds it against the post times
    # and prints the one command that fixes it, which the demo then runs
    stretch = re.search(r"# Demo: the names of (\S+)\.\.(\S+) \((\d+) files\) rewritten in UTC", out)
    assert stretch, out
    verify = out.split("# Demo step: verify the names against Discord's post times")[1]
    assert re.search(rf"  {stretch[1]}\.\.{stretch[2]}: \d+ file\(s\) off by \+[45]:00:00", verify)
    fix = (f"python adjust_timestamps.py --folders {download} {clean} {daily} --to-post-time "
           f"--archive {download}")
    assert f"Fix every known file to its post time (planned, journaled, undoable):\n  {fix}" in verify
    assert f"#   {fix}" in out  # run as printed
    for folder in (download, clean, daily):
        assert run_main_step(capsys, "quality_check_timestamps", "--folder", folder, "--verify", "--archive",
                             download, "--no-adjust", "--plot", tmp_path / "check.png") == 0
    from PIL import Image
    with Image.open(tmp_path / "demo" / config.PLOT_FILE) as plot:
        assert plot.format == "PNG"

    # a second demo replaces the first one's folders (they carry the demo marker)
    code, out, err = run_main(capsys, "--demo", "--no-progress", "--output", tmp_path / "demo")
    assert code == 0, err
    assert out.count("replacing the earlier demo run") == 3
    assert len(images_in(download)) == len(downloaded)

    # a folder the demo did not make is never deleted
    mine = tmp_path / "mine"
    (mine / config.CLEAN_OUTPUT_DIR).mkdir(parents=True)
    keep = mine / config.CLEAN_OUTPUT_DIR / "2025-01-02_10-00-00_keep.png"
    keep.write_bytes(b"user data")
    code, _, err = run_main(capsys, "--demo", "--output", mine)
    assert code == 2 and "the demo did not make" in err
    assert keep.read_bytes() == b"user data" and not (mine / "spx-realtime-aws").exists()


def test_help_exits_0(capsys):
    code, out, _ = run_main(capsys, "--help")
    assert code == 0 and "--demo" in out and "--threads" in out


@pytest.mark.parametrize("shape", ["tok-{}\u2019x", "tok-{}\nx", "tok {} x", "tok-{}\u00e9"])
def test_a_token_no_header_can_carry_exits_2_without_showing_it(world, capsys, monkeypatch, shape):
    """A copy-paste accident (a line break, a typographic quote) must not end
    in a traceback or in an error text that quotes the header value."""
    bad = shape.format(world.token[-8:])
    monkeypatch.setenv("DISCORD_USER_TOKEN", bad)
    code, out, err = run_main(capsys, "--channel", world.channel["id"], "--days", "1")
    assert code == 2, err
    assert err.startswith("error:") and err.count("\n") == 1 and "value not shown" in err
    assert world.token[-8:] not in out + err and "Traceback" not in out + err
    assert not world.emu.requests  # nothing was sent


def test_a_bot_token_written_with_its_bot_prefix_is_sent_as_a_bot_token(capsys, monkeypatch):
    from download_helpers import start_world
    w = start_world(monkeypatch, kind="bot")
    try:
        w.post(ago(hours=1), "c.png")
        monkeypatch.delenv("DISCORD_BOT_TOKEN")
        monkeypatch.setenv("DISCORD_USER_TOKEN", "Bot " + w.token)
        code, out, err = run_main(capsys, "--channel", w.channel["id"], "--days", "1", "--output", "out")
        assert code == 0, err
        assert "(bot token)" in out and w.token not in out + err
        assert {r.authorization for r in w.emu.requests if r.server == "api"} == {"Bot " + w.token}
    finally:
        w.emu.stop()


def _on_a_terminal(argv, keys, env):
    """Run main.py on a pseudo-terminal, typing each of `keys` once the
    output so far ends with a prompt; (exit code, everything shown)."""
    pty = pytest.importorskip("pty")
    import select
    import time
    pid, fd = pty.fork()
    if pid == 0:  # the child: never returns
        os.execve(sys.executable, [sys.executable, str(ROOT / "main.py"), *argv], env)
    shown, keys = b"", list(keys)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if keys and shown.rstrip().endswith(b":"):
            os.write(fd, keys.pop(0))
        if not select.select([fd], [], [], 0.2)[0]:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode("utf-8", "replace")


def test_on_a_terminal_the_token_is_hidden_checked_at_once_and_ctrl_d_ends_cleanly(world, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISCORD_USER_TOKEN", "DISCORD_BOT_TOKEN",
                                                            cli.INTERACTIVE_ENV)}
    code, shown = _on_a_terminal([], [world.token.encode() + b"\n", b"\x04"], env)
    assert code == 2, shown
    assert main.PROMPT_TOKEN.strip() in shown and main.PROMPT_CHANNEL.strip() in shown
    assert world.token not in shown and "end of input" in shown and "Traceback" not in shown
    assert [r.path for r in world.emu.requests] == ["/api/v10/users/@me"]  # checked before the next question
    # a typed token Discord refuses is said so at once, before any other question
    typed = "tok-typed-" + os.urandom(4).hex()
    code, shown = _on_a_terminal([], [typed.encode() + b"\n"], env)
    assert code == 2 and "the token you typed was refused (HTTP 401)" in shown, shown
    assert main.PROMPT_CHANNEL.strip() not in shown and typed not in shown and "DISCORD_USER_TOKEN" not in shown
    # Ctrl-D at the hidden token prompt itself
    code, shown = _on_a_terminal([], [b"\x04"], env)
    assert code == 2 and "end of input" in shown and "Traceback" not in shown, shown


def test_a_real_download_into_a_demo_folder_is_never_replaced_by_a_later_demo(world, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(main, "DEMO_STEPS", [])
    folder = tmp_path / "demo" / "spx-realtime-aws"
    assert run_main(capsys, "--demo", "--no-progress", "--output", tmp_path / "demo")[0] == 0
    world.post(ago(hours=1), "real.png")
    code, out, err = run_main(capsys, "--channel", world.channel["id"], "--days", "1", "--output", folder)
    assert code == 0, err
    real = [n for n in images_in(folder) if n.endswith("_real.png")]
    assert len(real) == 1
    code, _, err = run_main(capsys, "--demo", "--no-progress", "--output", tmp_path / "demo")
    assert code == 2 and "the demo did not make" in err
    assert (folder / real[0]).is_file()


def test_real_images_copied_into_a_demo_clean_folder_are_never_replaced(capsys, monkeypatch, tmp_path, make_image):
    monkeypatch.setattr(main, "DEMO_STEPS", [])
    folder = tmp_path / "demo" / "spx-realtime-aws"
    assert run_main(capsys, "--demo", "--no-progress", "--output", tmp_path / "demo")[0] == 0
    mine = make_image(tmp_path / "demo" / config.CLEAN_OUTPUT_DIR / "2025-01-02_10-00-00_mine.png", seed=3)
    code, _, err = run_main(capsys, "--demo", "--no-progress", "--output", tmp_path / "demo")
    assert code == 2 and "the demo did not make" in err
    assert mine.is_file() and len(images_in(folder)) > 100


def test_the_job_never_shows_its_token():
    job = main.Job(token="tok-" + os.urandom(6).hex(), kind=None, channel="1", guild="", days=1, output="o")
    assert job.token not in repr(job) and job.token not in str(job)


def test_demo_quiet_runs_its_steps_quiet(capsys, monkeypatch, tmp_path):
    # a step the demo runs takes the demo's -q: no report lines, not even on stderr
    step = main.DemoStep("compare date coverage", "check_unique_dates",
                         lambda download, clean, daily, plot: ["--folders", download, "--trading-days"])
    monkeypatch.setattr(main, "DEMO_STEPS", [step])
    code, out, err = run_main(capsys, "--demo", "-q", "--output", tmp_path / "demo")
    assert code == 0, err
    assert "Unique Dates Analysis" not in out + err and "info:" not in err, err
    assert out.strip().startswith("check_unique_dates.py: 1 folders"), out
