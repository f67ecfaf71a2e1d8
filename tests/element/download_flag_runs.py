#!/usr/bin/python3
"""Plays a non-interleaved MP4 through playbin with its download flag N times
and counts the runs that reach EOS with every frame.

    download_flag_runs.py [--runs 20] [--source prefetchsrc|souphttpsrc]
                          [--build-dir DIR] [--clip FILE] [--timeout S]
                          [--ttfb S] [--rate BYTES_PER_S] [--seconds N]

The clip (default: a 60 s 640x360 H.264/AAC file with all its video before
all its audio, made by tests/support/media/make_clip.sh into a temporary
directory) is served by tests/bench/origin.py on 127.0.0.1 with a fixed
first-byte time (--ttfb, default 0.1 s) and a per-response rate (--rate,
default 8 MiB/s). Each run is a fresh process running what
`gst-launch-1.0 playbin uri=... flags=0x697` runs: playbin with the download
flag (0x80) on top of its defaults, decoded video and audio into fakesinks
(sync=false), and a reaction to BUFFERING messages (--buffering):
gst-launch (the default) does what gst-launch-1.0 does, PAUSED below 100 %
and PLAYING at 100 %, also for the download buffer's DOWNLOAD-mode messages;
download-aware ignores those, as players do (GstPlay, Totem). The source is
picked by rank, as GST_PLUGIN_FEATURE_RANK=prefetchsrc:MAX does
(--source souphttpsrc takes prefetchsrc out, for comparison).

A run that does not end is described: the download buffer's byte ranges, the
source's position and task, the pipeline's state; with
DOWNLOAD_FLAG_STACKS=PREFIX also every thread's stack (gdb) in PREFIX.PID.

A run passes when it posts EOS within --timeout with exactly the video frames
and audio buffers the same playbin decodes from the file itself (a reference
run on file://). Prints one line per run and a summary "N/M runs reached EOS
with every frame"; exit status 0 only if all did.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAY_FLAGS = 0x697  # playbin's defaults (0x617) | download (0x80)


def play_once(uri, timeout, buffering):
    """One playbin run in this process; prints 'RESULT eos video audio secs source'."""
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import GLib, Gst

    Gst.init(None)
    playbin = Gst.ElementFactory.make("playbin", None)
    counts = {"video": 0, "audio": 0}
    source = {"name": "(none)"}

    def handoff(kind):
        def cb(_sink, _buffer, _pad):
            counts[kind] += 1

        return cb

    sinks = {}
    for kind in ("video", "audio"):
        sink = Gst.ElementFactory.make("fakesink", None)
        sink.set_property("sync", False)
        sink.set_property("signal-handoffs", True)
        sink.connect("handoff", handoff(kind))
        sinks[kind] = sink

    def on_source_setup(_playbin, src):
        factory = src.get_factory()
        source["name"] = factory.get_name() if factory else "(none)"

    playbin.connect("source-setup", on_source_setup)
    playbin.set_property("uri", uri)
    playbin.set_property("flags", PLAY_FLAGS)
    playbin.set_property("video-sink", sinks["video"])
    playbin.set_property("audio-sink", sinks["audio"])

    loop = GLib.MainLoop()
    result = {"eos": False, "error": None}
    target = {"state": Gst.State.PLAYING, "buffering": False}

    def on_message(_bus, msg):
        t = msg.type
        if t == Gst.MessageType.EOS:
            result["eos"] = True
            loop.quit()
        elif t == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            result["error"] = "%s (%s)" % (err.message, dbg)
            loop.quit()
        elif t == Gst.MessageType.BUFFERING:
            # What gst-launch-1.0 does: wait in PAUSED until 100 %.
            percent = msg.parse_buffering()
            result["last_buffering"] = percent
            if buffering == "download-aware" and \
                    msg.parse_buffering_stats()[0] == Gst.BufferingMode.DOWNLOAD:
                # What players do with a download buffer (GstPlay, Totem): its
                # percent is how much lies ahead on disk, not a reason to stop.
                return True
            if percent < 100 and not target["buffering"]:
                target["buffering"] = True
                playbin.set_state(Gst.State.PAUSED)
            elif percent >= 100 and target["buffering"]:
                target["buffering"] = False
                playbin.set_state(target["state"])
        elif t == Gst.MessageType.CLOCK_LOST:
            playbin.set_state(Gst.State.PAUSED)
            playbin.set_state(Gst.State.PLAYING)
        return True

    bus = playbin.get_bus()
    bus.add_watch(GLib.PRIORITY_DEFAULT, on_message)
    GLib.timeout_add(int(timeout * 1000), loop.quit)
    start = time.monotonic()
    if playbin.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        result["error"] = "set_state(PLAYING) failed"
    else:
        loop.run()
    secs = time.monotonic() - start
    if not result["eos"] and not result["error"]:
        result["error"] = "stuck (last BUFFERING %s%%): %s" % (result.get("last_buffering"),
                                                            describe_stuck(Gst, playbin))
    playbin.set_state(Gst.State.NULL)
    print(
        "RESULT %d %d %d %.2f %s %s"
        % (
            result["eos"],
            counts["video"],
            counts["audio"],
            secs,
            source["name"],
            (result["error"] or "-").replace("\n", " "),
        ),
        flush=True,
    )


def describe_stuck(Gst, playbin):
    """Where a run that did not end stands: the download buffer's byte
    ranges (a BUFFERING query), each element's state, the source's byte
    position; read without any logging, which changes the timing."""
    out = []
    it = playbin.iterate_recurse()
    while True:
        ok, element = it.next()
        if ok != Gst.IteratorResult.OK:
            break
        name = element.get_factory().get_name() if element.get_factory() else "?"
        if name == "downloadbuffer":
            q = Gst.Query.new_buffering(Gst.Format.BYTES)
            if element.query(q):
                ranges = [q.parse_nth_buffering_range(i)[1:] for i in range(q.get_n_buffering_ranges())]
                out.append("downloadbuffer ranges %s, percent %s" % (ranges, q.parse_buffering_percent()[1]))
        if name in ("prefetchsrc", "souphttpsrc"):
            ok, pos = element.query_position(Gst.Format.BYTES)
            ok2, dur = element.query_duration(Gst.Format.BYTES)
            pad = element.get_static_pad("src")
            out.append("%s position %s duration %s task %s" % (
                name, pos if ok else "?", dur if ok2 else "?", pad.get_task_state() if pad else "?"))
    _, current, pending = playbin.get_state(0)
    out.append("playbin state %s (pending %s)" % (current.value_nick, pending.value_nick))
    stacks = os.environ.get("DOWNLOAD_FLAG_STACKS")
    if stacks:
        # Every thread's stack, for where a stuck run waits (gdb attaches to us).
        path = "%s.%d" % (stacks, os.getpid())
        with open(path, "w") as f:
            subprocess.run(["gdb", "-p", str(os.getpid()), "-batch", "-ex", "thread apply all bt"],
                           stdout=f, stderr=subprocess.STDOUT, timeout=60)
        out.append("stacks in " + path)
    return "; ".join(out)


def run_child(uri, timeout, env, buffering):
    """A fresh process for one run; returns (eos, video, audio, secs, source, error)."""
    cmd = ["/usr/bin/python3", os.path.abspath(__file__), "--once", uri, "--timeout", str(timeout),
           "--buffering", buffering]
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        return False, 0, 0, timeout + 30, "?", "the run did not end (killed)"
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            parts = line.split(" ", 6)
            return (parts[1] == "1", int(parts[2]), int(parts[3]), float(parts[4]), parts[5],
                    parts[6])
    return False, 0, 0, 0.0, "?", "no result, exit %d: %s" % (out.returncode, out.stderr[-500:])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--once", metavar="URI", help=argparse.SUPPRESS)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--source", choices=["prefetchsrc", "souphttpsrc"], default="prefetchsrc")
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    p.add_argument("--clip", help="the MP4 to serve (default: made into a temporary directory)")
    p.add_argument("--seconds", type=int, default=60, help="length of the clip made")
    p.add_argument("--layout", default="noninterleaved-tail",
                   help="make_clip.sh layout of the clip made (noninterleaved[-tail])")
    p.add_argument("--timeout", type=float, default=60, help="seconds a run may take")
    p.add_argument("--origin", default=os.path.join(ROOT, "tests/bench/origin.py"),
                   help="the origin server script (tests/bench/origin.py or a copy)")
    p.add_argument("--ttfb", type=float, default=0.1, help="origin first-byte time, s")
    p.add_argument("--rate", type=int, default=8 << 20, help="origin bytes/s per response")
    p.add_argument("--buffering", choices=["gst-launch", "download-aware"], default="gst-launch",
                   help="gst-launch: PAUSED on any BUFFERING below 100 %%, PLAYING at 100 %% "
                   "(gst-launch-1.0); download-aware: ignore the download buffer's "
                   "DOWNLOAD-mode messages, as players do")
    args = p.parse_args()

    if args.once:
        play_once(args.once, args.timeout, args.buffering)
        return 0

    with tempfile.TemporaryDirectory(prefix="download-flag-") as tmp:
        clip = args.clip
        if not clip:
            clip = os.path.join(tmp, "noninterleaved.mp4")
            subprocess.run([os.path.join(ROOT, "tests/support/media/make_clip.sh"), clip,
                            str(args.seconds), args.layout, "640x360", "5000"], check=True)
        clip = os.path.abspath(clip)
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["GST_PLUGIN_PATH"] = os.path.join(os.path.abspath(args.build_dir), "plugin")
        env["GST_REGISTRY"] = os.path.join(tmp, "registry.bin")
        if args.source == "prefetchsrc":
            env["GST_PLUGIN_FEATURE_RANK"] = "prefetchsrc:MAX"
        else:
            env["GST_PLUGIN_FEATURE_RANK"] = "prefetchsrc:NONE"

        ref = run_child("file://" + clip, args.timeout, env, args.buffering)
        if not ref[0]:
            print("reference run on the file itself failed: %s" % (ref[5],))
            return 2
        print("reference (file): %d video frames, %d audio buffers" % (ref[1], ref[2]))

        port_file = os.path.join(tmp, "port")
        origin = subprocess.Popen(
            ["/usr/bin/python3", args.origin, "--root",
             os.path.dirname(clip), "--port-file", port_file, "--ttfb", "fixed:%g" % args.ttfb,
             "--rate", str(args.rate)])
        try:
            for _ in range(100):
                if os.path.exists(port_file) and open(port_file).read().strip():
                    break
                time.sleep(0.1)
            port = int(open(port_file).read().strip())
            uri = "http://127.0.0.1:%d/%s" % (port, os.path.basename(clip))
            good = 0
            for i in range(1, args.runs + 1):
                eos, video, audio, secs, source, error = run_child(uri, args.timeout, env,
                                                                   args.buffering)
                ok = eos and video == ref[1] and audio == ref[2] and source == args.source
                good += ok
                print("run %2d: %s %s after %.2f s, video %d/%d, audio %d/%d%s" % (
                    i, "ok  " if ok else "FAIL", "EOS" if eos else "no EOS", secs, video, ref[1],
                    audio, ref[2], "" if source == args.source else ", source " + source) +
                      ("" if error == "-" else ", " + error), flush=True)
        finally:
            origin.terminate()
            origin.wait()
    print("%d/%d runs reached EOS with every frame (%s, ttfb %g s, %d B/s per response, "
          "buffering %s)" % (good, args.runs, args.source, args.ttfb, args.rate, args.buffering))
    return 0 if good == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
