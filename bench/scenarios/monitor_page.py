"""monitor_page: the Live Monitor page's render budget in Chromium (issue 11).

"2,000 agents at 200 changes/s stay interactive": ``AGENTS`` lean agents (msgpack,
:mod:`bench.lean_ws`) online in one company, in a few segments, and the page
``/monitor`` open in headless Chromium (:func:`tests.browser.chromium`) with a
supervisor's token. Once it holds the 2,000 agents (its rows ``tr[data-agent]``, or
``body[data-agents]`` where only the rows in sight are in the DOM), the page gets its
probes, installed before the load (observers ``buffered``):

- ``longtask`` and ``long-animation-frame`` entries (the latter say what ran
  in a long frame: script by invoker, style and layout, render);
- a ``requestAnimationFrame`` loop recording the time between frames;
- a MutationObserver on ``body[data-rendered]``, the page's count of changes
  rendered: when each change reached the DOM;
- a keydown listener: from the key event's timestamp to the next frame painted
  (``requestAnimationFrame`` then ``setTimeout 0``). The keys are real input
  (CDP ``Input.dispatchKeyEvent`` over a DevTools connection of the bench's own,
  on schedule, not waiting for the page) into ``#search``, every ``PROBE``
  seconds during the load: "m" then Backspace (every agent id has an "m": every
  row stays shown).

Then ``RATE`` status changes/s for ``SECONDS`` (open loop: each sent when due,
whatever came back, to a random agent, never its current status), and after
it the page must catch up: ``data-rendered`` reach the number of changes the
server applied, and the status cells of the rows in the DOM equal ``GET /v1/agents``.

Where the time goes comes from the page's main thread as CDP's
``Performance.getMetrics`` counts it (task, script, style, layout), and a
short second load under CDP's sampling profiler (not in the measured
window: the sampling costs time of its own). CPU is read from /proc for the
Chromium processes (the renderer apart), the server, Redis and the bench: all
share the machine's cores.

The budget ("interactive"): no long task over 200 ms, frame time p99 under
50 ms, input to next paint p99 under 100 ms. Reported, not asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
from selenium.webdriver.chrome.webdriver import WebDriver as ChromeDriver
from selenium.webdriver.remote.webdriver import WebDriver
from websockets.asyncio.client import ClientConnection, connect

from bench.common import (
    COMPANY,
    SECRET,
    Context,
    Result,
    cpu_seconds,
    gather_bounded,
    new_prefix,
    p50,
    percentile,
    redis_pid,
    server_under_test,
    token,
)
from bench.lean_ws import LeanSocket, lean_connect
from bench.scenarios.churn import collector_paused
from client_sdk.protocol import MSGPACK, decode, encode
from presence_protocol import DEFAULT_STATUSES
from server.auth import issue
from tests.browser import CHROMEDRIVER, CHROMIUM, chromium

NAME = "monitor_page"
AGENTS = 2000
RATE = 200
SECONDS = 20.0
QUICK_SECONDS = 5.0
#: The profiled load after the measured one.
PROFILE_SECONDS = 5.0
QUICK_PROFILE_SECONDS = 2.0
SEGMENTS = ("ventas", "soporte", "cobranza", "retencion")
STATUSES = ("available", *DEFAULT_STATUSES)
#: Seconds between two keys typed into the search box.
PROBE = 0.5
#: How often the open-loop scheduler wakes to send what has come due.
TICK = 0.005
#: How long the acks, then the page, get to catch up once the load stops.
CATCH_UP = 15.0
#: The budget: longest task, frame time p99, input to next paint p99 (ms).
LONG_TASK_BUDGET, FRAME_BUDGET, INPUT_BUDGET = 200, 50, 100

# The probes, installed once the rows are there and before the load.
INSTALL = """
const B = (window.__bench = {frames: [], longtasks: [], loafs: [], inputs: [], events: [],
                             renders: [], running: true});
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) B.longtasks.push([e.startTime, e.duration]);
}).observe({type: "longtask", buffered: true});
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) B.loafs.push({
    start: e.startTime, duration: e.duration, blocking: e.blockingDuration,
    renderStart: e.renderStart, styleAndLayoutStart: e.styleAndLayoutStart,
    scripts: e.scripts.map((s) => ({invoker: s.invoker, type: s.invokerType,
      fn: s.sourceFunctionName, url: s.sourceURL, duration: s.duration,
      forced: s.forcedStyleAndLayoutDuration})),
  });
}).observe({type: "long-animation-frame", buffered: true});
new PerformanceObserver((list) => {
  for (const e of list.getEntries())
    B.events.push([e.name, e.startTime, e.duration, e.processingStart - e.startTime]);
}).observe({type: "event", durationThreshold: 16, buffered: true});
let last = null;
const frame = (t) => {
  if (last !== null) B.frames.push([t, t - last]);
  last = t;
  if (B.running) requestAnimationFrame(frame);
};
requestAnimationFrame(frame);
new MutationObserver(() => {
  B.renders.push([performance.timeOrigin + performance.now(),
                  Number(document.body.dataset.rendered || 0)]);
}).observe(document.body, {attributes: true, attributeFilter: ["data-rendered"]});
window.addEventListener("keydown", (e) => {
  const t0 = e.timeStamp, handled = performance.now();
  requestAnimationFrame(() => setTimeout(() => {
    B.inputs.push([t0, performance.now() - t0, handled - t0]);
  }, 0));
}, true);
return Number(document.body.dataset.rendered || 0);
"""

COLLECT = """
const B = window.__bench;
B.running = false;
return JSON.stringify({origin: performance.timeOrigin, frames: B.frames,
  longtasks: B.longtasks, loafs: B.loafs, inputs: B.inputs, events: B.events, renders: B.renders,
  heap: performance.memory ? performance.memory.usedJSHeapSize : null});
"""

ROWS = "tbody#agents tr[data-agent]"
# How many agents the page holds: its rows, or body[data-agents] where only the rows in
# sight are in the DOM.
AGENTS_SHOWN = f"""
return Math.max(Number(document.body.dataset.agents || 0),
                document.querySelectorAll({ROWS!r}).length);
"""
# The status each row in the DOM shows (every agent's, or those in sight).
ROW_STATUSES = f"""
const shown = {{}};
for (const tr of document.querySelectorAll({ROWS!r}))
  if (!tr.hidden) shown[tr.dataset.agent] = tr.querySelector("td.status").textContent;
return shown;
"""


def packed(message: dict[str, Any]) -> bytes:
    frame = encode(message, MSGPACK)
    assert isinstance(frame, bytes)
    return frame


@dataclass
class Load:
    """What the load sent and what came back, from this process's clock."""

    #: Scheduled send times (Unix seconds), in sending order.
    sent: list[float] = field(default_factory=list)
    applied: int = 0
    acked: int = 0
    errors: list[str] = field(default_factory=list)


class Agent:
    def __init__(self, name: str, load: Load) -> None:
        self.name = name
        self.load = load
        self.socket: LeanSocket | None = None
        self.welcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        #: The status it was last told to take (so that no change is a no-op).
        self.status = "available"
        self.ref = 0

    def change(self, value: str) -> None:
        assert self.socket is not None
        self.status = value
        self.ref += 1
        self.socket.send(packed({"t": "status", "value": value, "ref": self.ref}))

    def on_message(self, payload: bytes) -> None:
        frame: dict[str, Any] = decode(payload)
        kind = frame["t"]
        if kind == "ack":
            self.load.acked += 1
            if frame.get("event") is not None:
                self.load.applied += 1
        elif kind == "welcome":
            self.welcome.set_result(None)
        elif kind != "state":
            self.load.errors.append(f"{self.name}: {frame}")


async def connect_agent(url: str, agent: Agent, i: int) -> None:
    segments: tuple[str, ...] = (SEGMENTS[i % len(SEGMENTS)],)
    if i % 3 == 0:
        segments += (SEGMENTS[(i + 1) % len(SEGMENTS)],)
    signed = issue(
        SECRET,
        company=COMPANY,
        sub=agent.name,
        role="agent",
        now=int(time.time()),
        ttl=86_400,
        segments=segments,
    )
    agent.socket = await lean_connect(url, MSGPACK, agent.on_message)
    agent.socket.send(packed({"t": "hello", "token": signed, "status": "available"}))
    await agent.welcome


async def drive(agents: list[Agent], load: Load, seconds: float, rng: random.Random) -> None:
    """``RATE`` changes/s for ``seconds``, each to a random agent when due (open loop)."""
    began, epoch = time.perf_counter(), time.time()
    due, total = 0, int(seconds * RATE)
    while due < total:
        target = min(total, int((time.perf_counter() - began) * RATE))
        while due < target:
            agent = rng.choice(agents)
            agent.change(rng.choice([s for s in STATUSES if s != agent.status]))
            load.sent.append(epoch + due / RATE)
            due += 1
        await asyncio.sleep(TICK)


async def until(predicate: Any, within: float, every: float = 0.05) -> float | None:
    """Seconds until ``predicate()`` (awaited if need be) holds; None if it never did."""
    began = time.perf_counter()
    while time.perf_counter() - began < within:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.perf_counter() - began
        await asyncio.sleep(every)
    return None


class Browser:
    """The Chromium of the run, every call to it in a thread (Selenium blocks), one at a time."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver
        self.lock = asyncio.Lock()

    async def __call__(self, fn: Any, *args: Any) -> Any:
        async with self.lock:
            return await asyncio.to_thread(fn, *args)

    async def script(self, source: str, *args: Any) -> Any:
        return await self(self.driver.execute_script, source, *args)

    async def cdp(self, command: str, params: dict[str, Any] | None = None) -> Any:
        return await self(self.driver.execute_cdp_cmd, command, params or {})

    async def metrics(self) -> dict[str, float]:
        answer = await self.cdp("Performance.getMetrics")
        return {m["name"]: m["value"] for m in answer["metrics"]}

    async def agents(self) -> int:
        return int(await self.script(AGENTS_SHOWN))

    async def rendered(self) -> int:
        return int(await self.script("return Number(document.body.dataset.rendered || 0)"))


def chromium_pids(root: int) -> dict[int, str]:
    """The processes under ``root`` (chromedriver): pid → their --type (browser for none)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rpartition(")")[2].split()[1])
        except OSError:
            continue
        children[parent].append(int(entry))
    found: dict[int, str] = {}
    pending = list(children[root])
    while pending:
        pid = pending.pop()
        pending.extend(children[pid])
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                args = cmdline.read().split(b"\0")
        except OSError:
            continue
        if not args or b"chrom" not in args[0]:
            continue
        # Chromium rewrites its command line as one string: the arguments are in args[0].
        kind = re.search(rb"--type=(\S+)", b" ".join(args))
        found[pid] = kind[1].decode() if kind else "browser"
    return found


def foreign_browsers() -> int:
    """How many chromedrivers run on this machine besides ours (someone's browser tests)."""
    count = 0
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as cmdline:
            if cmdline.read().split(b"\0")[0].endswith(b"chromedriver"):
                count += 1
    return max(0, count - 1)


def cpu_of(pids: dict[int, str]) -> dict[int, float]:
    readings = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            readings[pid] = cpu_seconds(pid)
    return readings


def lateness(renders: list[list[float]], sent: list[float], base: int) -> list[float]:
    """For the k-th change sent, ms from its scheduled time to the first render whose
    count (past ``base``) reached k: changes are matched to renders by count."""
    latencies = []
    k = 0
    for at, count in renders:
        while k < len(sent) and count - base > k:
            latencies.append(at - sent[k] * 1000)
            k += 1
    return latencies


def where_time_goes(loafs: list[dict[str, Any]]) -> str:
    """The long animation frames' time by part: scripts by invoker, then style and layout."""
    script: Counter[str] = Counter()
    forced = style_layout = 0.0
    for frame in loafs:
        if frame["styleAndLayoutStart"]:
            style_layout += frame["start"] + frame["duration"] - frame["styleAndLayoutStart"]
        for s in frame["scripts"]:
            where = s["fn"] or s["type"]
            script[f"{s['invoker']} ({where})"] += s["duration"]
            forced += s["forced"]
    top = ", ".join(f"{name} {ms:.0f}" for name, ms in script.most_common(4))
    total = sum(f["duration"] for f in loafs)
    return (
        f"{len(loafs)} animation frames over 50 ms, {total:.0f} ms: scripts "
        f"{sum(script.values()):.0f} ms [{top}] (forced style/layout in them {forced:.0f}); "
        f"the frames' style and layout {style_layout:.0f} ms"
    )


#: The sampled profile's pseudo-frames: not JavaScript.
NATIVE = ("(program)", "(idle)", "(garbage collector)", "(root)")


def top_functions(profile: dict[str, Any], count: int = 5) -> str:
    """The sampled profile: its share of JavaScript, and JavaScript's self time by function."""
    hits: Counter[str] = Counter()
    for node in profile["nodes"]:
        frame = node["callFrame"]
        where = frame["url"].rsplit("/", 1)[-1]
        name = frame["functionName"] or "(anonymous)"
        label = f"{name} {where}:{frame['lineNumber'] + 1}" if where else name
        hits[label] += node.get("hitCount", 0)
    total = sum(hits.values()) or 1
    wall = (profile["endTime"] - profile["startTime"]) / 1e6
    js = {label: n for label, n in hits.items() if label not in NATIVE}
    top = sorted(js.items(), key=lambda item: -item[1])[:count]
    return (
        f"{wall:.1f} s sampled: JavaScript {100 * sum(js.values()) / total:.0f}%, "
        f"(program) i.e. style, layout, paint {100 * hits['(program)'] / total:.0f}%, "
        f"GC {100 * hits['(garbage collector)'] / total:.0f}%, idle "
        f"{100 * hits['(idle)'] / total:.0f}%; JS by self time: "
        + ", ".join(f"{label} {100 * n / total:.1f}%" for label, n in top)
    )


#: Keys as CDP's Input.dispatchKeyEvent takes them: "m", then Backspace.
KEYS = (
    {"key": "m", "code": "KeyM", "text": "m", "windowsVirtualKeyCode": 77},
    {"key": "Backspace", "code": "Backspace", "windowsVirtualKeyCode": 8},
)


class Keyboard:
    """Real key presses (trusted events, through the browser's input pipeline) into the
    page's focused element, over a DevTools connection of their own to the page: sent on
    schedule, never waiting for the renderer to handle the one before (Selenium's CDP
    calls answer only once it has, which would time the keys by the page's free moments)."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.sent = self.answered = 0
        self._drain = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, driver: WebDriver) -> Keyboard:
        address = driver.capabilities["goog:chromeOptions"]["debuggerAddress"]
        async with httpx.AsyncClient() as client:
            targets = (await client.get(f"http://{address}/json")).json()
        page = next(t for t in targets if t["type"] == "page" and "/monitor" in t["url"])
        return cls(await connect(page["webSocketDebuggerUrl"], max_size=None, ping_interval=None))

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for _ in self.socket:
                self.answered += 1

    async def press(self, key: dict[str, Any]) -> None:
        for kind in ("keyDown" if "text" in key else "rawKeyDown", "keyUp"):
            self.sent += 1
            params = {"type": kind, **key}
            await self.socket.send(
                json.dumps({"id": self.sent, "method": "Input.dispatchKeyEvent", "params": params})
            )

    async def close(self) -> None:
        """Once every key sent is handled (or CATCH_UP is over)."""
        await until(lambda: self.answered >= self.sent, CATCH_UP)
        await self.socket.close()
        await self._drain


async def open_page(browser: Browser, http_url: str, supervisor: str) -> float:
    """Open the Live Monitor; ms until it holds the ``AGENTS`` agents."""
    opened = time.perf_counter()
    await browser(browser.driver.get, f"{http_url}/monitor#token={supervisor}")
    if await until(lambda: all_agents(browser), 60, 0.1) is None:
        raise RuntimeError(f"the page never held {AGENTS} agents")
    return (time.perf_counter() - opened) * 1000


@dataclass
class Window:
    """One load as the page and /proc saw it."""

    seconds: float
    #: Unix seconds of the load's start and end (its schedule).
    began: float = 0.0
    ended: float = 0.0
    wall: float = 0.0
    typed: int = 0
    base: int = 0
    #: CDP Performance.getMetrics before and after, and the seconds between the two.
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    metrics_wall: float = 0.0
    #: CPU seconds per process over the load, and what each is.
    cpu: dict[int, float] = field(default_factory=dict)
    kinds: dict[int, str] = field(default_factory=dict)
    browser_pids: set[int] = field(default_factory=set)
    #: Other Chromium instances on the machine (someone else's), at the start and the end.
    foreign: tuple[int, int] = (0, 0)

    def share(self, metric: str) -> float:
        return (self.after[metric] - self.before[metric]) / self.metrics_wall

    def each(self, name: str) -> str:
        """How often ``name`` (RecalcStyle, Layout) ran, and its mean duration."""
        count = self.after[f"{name}Count"] - self.before[f"{name}Count"]
        spent = self.after[f"{name}Duration"] - self.before[f"{name}Duration"]
        return f"{count / self.metrics_wall:.1f}/s, {1000 * spent / max(1, count):.0f} ms each"

    def chromium(self) -> float:
        """Cores all Chromium's processes used."""
        return sum(v for pid, v in self.cpu.items() if pid in self.browser_pids) / self.wall

    def cores(self, *kinds: str) -> float:
        return sum(v for pid, v in self.cpu.items() if self.kinds.get(pid) in kinds) / self.wall


async def loaded(
    browser: Browser,
    agents: list[Agent],
    load: Load,
    seconds: float,
    rng: random.Random,
    others: dict[int, str],
) -> Window:
    """``RATE`` changes/s for ``seconds`` with a key typed every ``PROBE`` s, probes
    installed (once) before it."""
    window = Window(seconds)
    window.base = int(await browser.script(INSTALL))
    await browser.script("document.getElementById('search').focus()")
    await browser.cdp("Performance.enable", {"timeDomain": "timeTicks"})
    await browser.cdp("HeapProfiler.collectGarbage")
    window.before = await browser.metrics()
    metrics_began = time.perf_counter()
    ours = chromium_pids(cast(ChromeDriver, browser.driver).service.process.pid)
    window.browser_pids = set(ours)
    window.kinds = ours | others
    foreign = foreign_browsers()
    cpu_before = cpu_of(window.kinds)
    stop = asyncio.Event()

    keyboard = await Keyboard.open(browser.driver)

    async def type_keys() -> int:
        """A key every PROBE s (open loop)."""
        typed, began = 0, time.perf_counter()
        while not stop.is_set():
            due = began + (typed + 1) * PROBE
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - time.perf_counter()))
            if stop.is_set():
                break
            await keyboard.press(KEYS[typed % 2])
            typed += 1
        return typed

    window.began = time.time()
    wall_began = time.perf_counter()
    typist = asyncio.create_task(type_keys())
    with collector_paused():
        await drive(agents, load, seconds, rng)
    window.ended = time.time()
    window.wall = time.perf_counter() - wall_began
    cpu_after = cpu_of(window.kinds)
    window.cpu = {pid: cpu_after[pid] - cpu_before[pid] for pid in cpu_after if pid in cpu_before}
    window.foreign = (foreign, foreign_browsers())
    stop.set()
    window.typed = await typist
    await keyboard.close()
    window.after = await browser.metrics()
    window.metrics_wall = time.perf_counter() - metrics_began
    return window


async def run(ctx: Context) -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        note = f"{', '.join(missing)} missing: apt-get install chromium chromium-driver"
        ctx.add(Result(NAME, "skipped: no browser", None, "", note=note))
        return
    seconds = QUICK_SECONDS if ctx.quick else SECONDS
    profile_seconds = QUICK_PROFILE_SECONDS if ctx.quick else PROFILE_SECONDS
    rng = random.Random(11)
    load = Load()
    loadavg = os.getloadavg()[0]
    async with server_under_test(ctx.redis_url, new_prefix()) as server:
        agents = [Agent(f"m{i:04d}", load) for i in range(AGENTS)]
        began = time.perf_counter()
        await gather_bounded(AGENTS, 50, lambda i: connect_agent(server.agent_url, agents[i], i))
        connected = time.perf_counter() - began
        supervisor = token("sup", role="supervisor")
        others = {
            server.pid: "server",
            await redis_pid(ctx.redis_url): "redis",
            os.getpid(): "bench",
        }
        with contextlib.ExitStack() as stack:
            browser = Browser(await asyncio.to_thread(stack.enter_context, chromium()))
            try:
                first_render = await open_page(browser, server.http_url, supervisor)
                await asyncio.sleep(1.5)  # the snapshot's render and the first ticks settle
                window = await loaded(browser, agents, load, seconds, rng, others)
                checked = await check(browser, server.http_url, supervisor, load, window)
                # The profiled load, out of the measured window.
                await browser.cdp("Profiler.enable")
                await browser.cdp("Profiler.setSamplingInterval", {"interval": 500})
                await browser.cdp("Profiler.start")
                with collector_paused():
                    await drive(agents, load, profile_seconds, rng)
                profile = (await browser.cdp("Profiler.stop"))["profile"]
            finally:
                await asyncio.to_thread(stack.close)
        for agent in agents:
            if agent.socket is not None:
                agent.socket.close()
    report(ctx, window, checked, first_render, connected, loadavg, top_functions(profile))


@dataclass
class Checked:
    """What the page showed once the load was over."""

    sent: int
    applied: int
    errors: list[str]
    #: ms from the load's end until the page had rendered every applied change; None: never.
    lag: float | None
    rendered: int
    snapshots: int
    wrong: list[str]
    #: How many rows were in the DOM to compare.
    compared: int
    collected: dict[str, Any]
    retained: float
    #: The measured load's scheduled send times (Unix seconds).
    sent_times: list[float]


async def check(
    browser: Browser, http_url: str, supervisor: str, load: Load, window: Window
) -> Checked:
    sent = len(load.sent)
    await until(lambda: load.acked >= sent or load.errors, CATCH_UP)
    caught = await until(lambda: caught_up(browser, window.base, load.applied), CATCH_UP)
    lag = (time.time() - window.ended) * 1000 if caught is not None else None
    applied, errors = load.applied, list(load.errors)
    collected = json.loads(await browser.script(COLLECT))
    rendered = await browser.rendered() - window.base
    await browser.cdp("HeapProfiler.collectGarbage")
    retained = (await browser.metrics())["JSHeapUsedSize"]
    snapshots = int(await browser.script("return Number(document.body.dataset.snapshots || 0)"))
    headers = {"Authorization": f"Bearer {supervisor}"}
    async with httpx.AsyncClient(base_url=http_url, headers=headers, timeout=30) as client:
        states = (await client.get("/v1/agents")).json()["agents"]
        config = (await client.get("/v1/config")).json()
    labels = {"available": "Disponible"} | {s["value"]: s["label"] for s in config["statuses"]}
    rows = await browser.script(ROW_STATUSES)
    wrong = [
        s["agent"] for s in states if s["agent"] in rows and rows[s["agent"]] != labels[s["status"]]
    ]
    return Checked(
        sent,
        applied,
        errors,
        lag,
        rendered,
        snapshots,
        wrong,
        len(rows),
        collected,
        retained,
        load.sent[:sent],
    )


def report(
    ctx: Context,
    window: Window,
    checked: Checked,
    first_render: float,
    connected: float,
    loadavg: float,
    profile: str,
) -> None:
    collected = checked.collected
    origin = collected["origin"]
    start, end = window.began * 1000 - origin, window.ended * 1000 - origin
    frames = [d for t, d in collected["frames"] if start <= t <= end]
    tasks = [d for t, d in collected["longtasks"] if start <= t <= end]
    loafs = [f for f in collected["loafs"] if start <= f["start"] <= end]
    keys = [k for k in collected["inputs"] if start <= k[0] <= end + 1000]
    inputs, delays = [k[1] for k in keys], [k[2] for k in keys]
    slow_events = [e for e in collected["events"] if start <= e[1] <= end]
    latencies = lateness(collected["renders"], checked.sent_times, window.base)
    seconds = window.seconds
    context = (
        f"{AGENTS} agents in {len(SEGMENTS)} segments (connected in {connected:.1f} s), "
        f"supervisor page, {RATE}/s for {seconds:.0f} s; {checked.sent} sent, "
        f"{checked.applied} applied, {len(checked.errors)} errors; load average "
        f"{loadavg:.1f} at the start on {os.cpu_count()} cores, other browsers running "
        f"{window.foreign[0]} at the start, {window.foreign[1]} at the end; budget: no long task > "
        f"{LONG_TASK_BUDGET} ms, frame p99 < {FRAME_BUDGET} ms, input p99 < {INPUT_BUDGET} ms"
    )
    main_thread = (
        f"script {100 * window.share('ScriptDuration'):.0f}%, "
        f"style {100 * window.share('RecalcStyleDuration'):.0f}% "
        f"({window.each('RecalcStyle')}), "
        f"layout {100 * window.share('LayoutDuration'):.0f}% "
        f"({window.each('Layout')}) of the wall time"
    )
    mib = 2**20
    ctx.add(
        Result(NAME, "changes/s applied", checked.applied / seconds, "/s", f">= {RATE}", context),
        Result(
            NAME,
            "first render of the snapshot",
            first_render,
            "ms",
            note=f"from navigation until the page holds the {AGENTS} agents",
        ),
        Result(NAME, "long tasks", float(len(tasks)), "", note=f"in {window.wall:.1f} s"),
        Result(NAME, "long tasks: total", sum(tasks), "ms"),
        Result(
            NAME,
            "long tasks: longest",
            max(tasks, default=0.0),
            "ms",
            f"<= {LONG_TASK_BUDGET}",
            where_time_goes(loafs),
        ),
        Result(NAME, "frames/s", len(frames) / window.wall, "/s"),
        Result(NAME, "frame time p50", p50(frames), "ms", note=f"{len(frames)} frames"),
        Result(NAME, "frame time p99", percentile(frames, 99), "ms", f"<= {FRAME_BUDGET}"),
        Result(NAME, "frame time max", max(frames), "ms"),
        Result(
            NAME,
            "input to next paint p50",
            p50(inputs) if inputs else None,
            "ms",
            note=(
                f"{len(inputs)} of {window.typed} keys typed; input delay p50 "
                f"{p50(delays):.1f}, max {max(delays):.1f} ms"
                if delays
                else f"no key measured of {window.typed} typed"
            ),
        ),
        Result(
            NAME,
            "input to next paint p99",
            percentile(inputs, 99) if inputs else None,
            "ms",
            f"<= {INPUT_BUDGET}",
            f"Event Timing: {len(slow_events)} events over 16 ms, longest "
            f"{max((e[2] for e in slow_events), default=0):.0f} ms",
        ),
        Result(NAME, "change to page p50", p50(latencies) if latencies else None, "ms"),
        Result(
            NAME,
            "change to page p99",
            percentile(latencies, 99) if latencies else None,
            "ms",
            note="from a change's scheduled send to the render that counted it",
        ),
        Result(
            NAME,
            "caught up after the load",
            checked.lag,
            "ms",
            note=(
                f"rendered {checked.rendered} of {checked.applied} applied; "
                f"snapshots {checked.snapshots}"
            ),
        ),
        Result(
            NAME,
            "rows unlike GET /v1/agents",
            float(len(checked.wrong)),
            "",
            "<= 0",
            f"{checked.compared} rows in the DOM compared"
            + (f"; e.g. {checked.wrong[:3]}" if checked.wrong else ""),
        ),
        Result(NAME, "main thread busy", 100 * window.share("TaskDuration"), "%", note=main_thread),
        Result(
            NAME,
            "JS heap (performance.memory)",
            collected["heap"] / mib if collected["heap"] else None,
            "MiB",
            note=(
                f"CDP: {window.before['JSHeapUsedSize'] / mib:.1f} MiB before the load "
                f"(after GC), {window.after['JSHeapUsedSize'] / mib:.1f} at its end, "
                f"{checked.retained / mib:.1f} after GC"
            ),
        ),
        Result(
            NAME,
            "Chromium CPU",
            window.chromium(),
            "cores",
            note=(
                f"gpu {window.cores('gpu-process'):.2f}, browser {window.cores('browser'):.2f}; "
                f"server {window.cores('server'):.2f}, redis {window.cores('redis'):.2f}, "
                f"bench {window.cores('bench'):.2f} ({os.cpu_count()} cores)"
            ),
        ),
        Result(NAME, "renderer CPU", window.cores("renderer"), "cores"),
        Result(NAME, "profile: JS self time", None, "", note=profile),
        Result(
            NAME,
            "errors",
            float(len(checked.errors)),
            "",
            "<= 0",
            checked.errors[0][:200] if checked.errors else "",
        ),
    )


async def all_agents(browser: Browser) -> bool:
    return await browser.agents() >= AGENTS


async def caught_up(browser: Browser, base: int, applied: int) -> bool:
    return await browser.rendered() - base >= applied
