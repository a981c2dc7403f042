"""Next-run parity with Node BullMQ 6.7 (cron-parser 5.10.3), generated against the live Node driver.

Each case is (pattern, tz, start instant[, startDate, endDate]); both sides
compute what ``upsertJobScheduler`` computes for a pattern scheduler, chained
over several iterations (each next run computed from the previous one, with a
fresh parse, as BullMQ does). Start instants surround every DST transition of
2025-2027 in New York, Berlin and Sydney (Kolkata has none: it gets the same
instants), so the fall-back fold and the spring-forward gap are crossed both
ways. Node's side runs in a few ``eval`` calls returning arrays.
"""

from __future__ import annotations

import itertools

from bullbridge.scheduler.cron import parse
from bullbridge.scheduler.errors import InvalidSchedule
from bullbridge.scheduler.timing import Repeat, pattern_next_millis
from bullbridge.testing.node import NodeDriver
from tests.scheduler.helpers import dst_transitions, iso, ms, node_next_millis

DST_ZONES = ("America/New_York", "Europe/Berlin", "Australia/Sydney")
ZONES = (*DST_ZONES, "Asia/Kolkata")
YEARS = range(2025, 2028)

PATTERNS = (
    "0 2 * * *",  # the seed's nightly job: 02:00 is skipped / repeated in some zones
    "30 2 * * *",  # Node 07:30Z, the port's croniter 08:30Z on 2025-11-02 New York
    "30 1 * * *",
    "0 3 * * *",
    "59 1 * * *",
    "0 * * * *",
    "*/20 * * * *",
    "0 */2 * * *",
    "0 */6 * * *",
    "15,45 1-3 * * *",
    "0 1,2,3 * * *",
    "0 0 2 * * *",  # 6 fields, seconds first
    "30 */30 2 * * *",
    "0 10 * * 5",
    "0 2 * * 0#1",
    "0 2 L * *",
    "@daily",
    "@hourly",
)
OFFSETS_S = (-7200, -3660, -3600, -1800, -1, 0, 1, 1800, 3600, 7200, 90000)
STEPS = 3


def _cases() -> list[list[object]]:
    cases: list[list[object]] = []
    transitions = {zone: dst_transitions(zone, YEARS) for zone in DST_ZONES}
    for zone, instants in transitions.items():
        assert len(instants) == 6, (zone, [iso(t) for t in instants])
        for instant, pattern, offset in itertools.product(instants, PATTERNS, OFFSETS_S):
            cases.append([pattern, zone, instant + offset * 1000, None, None, STEPS])
    # Kolkata (no DST), UTC and some odd-millisecond starts at the same instants.
    every_instant = sorted(t for ts in transitions.values() for t in ts)
    for instant, pattern in itertools.product(every_instant, PATTERNS[:8]):
        cases.append([pattern, "Asia/Kolkata", instant - 3600_000 + 417, None, None, STEPS])
        cases.append([pattern, "UTC", instant + 999, None, None, 2])
    # startDate / endDate windows around each New York and Sydney transition.
    for zone in ("America/New_York", "Australia/Sydney"):
        for instant, pattern in itertools.product(transitions[zone], ("0 * * * *", "30 2 * * *", "*/20 * * * *")):
            cases.append([pattern, zone, instant - 86400_000, instant - 3600_000, instant + 3 * 3600_000, 6])
    return cases


def _python(case: list[object]) -> list[int | None]:
    pattern, tz, start, start_date, end_date, steps = case
    repeat = Repeat(pattern=str(pattern), tz=tz, start_date=start_date, end_date=end_date)  # type: ignore[arg-type]
    now = int(start)  # type: ignore[call-overload]
    seq: list[int | None] = []
    for _ in range(int(steps)):  # type: ignore[call-overload]
        nxt = pattern_next_millis(now, repeat)
        seq.append(nxt)
        if nxt is None:
            break
        now = nxt
    return seq


async def test_next_runs_match_node_across_every_dst_transition(node: NodeDriver) -> None:
    cases = _cases()
    assert len(cases) >= 1000
    node_results = await node_next_millis(node, cases)
    mismatches = []
    for case, expected in zip(cases, node_results):
        got = _python(case)
        if got != expected:
            mismatches.append((case, got, expected))
    shown = [
        (
            c[0],
            c[1],
            iso(int(c[2])),
            [iso(x) if x else x for x in g],  # type: ignore[call-overload]
            e if isinstance(e, str) else [iso(x) if x else x for x in e],
        )
        for c, g, e in mismatches[:5]
    ]
    assert not mismatches, f"{len(mismatches)} of {len(cases)} cases differ from Node, e.g. {shown}"


async def test_the_ports_croniter_is_an_hour_late_at_fall_back(node: NodeDriver) -> None:
    """docs/port-differences.md#cron-dst: the port's croniter fires `30 2 * * *`
    New York one hour late on 2025-11-02; Node and bullbridge fire at 07:30Z.
    (If this module fell back to croniter, the first assertion would fail.)"""
    from bullmq.job_scheduler import default_repeat_strategy

    start = ms("2025-11-01T12:00:00+00:00")
    ours = pattern_next_millis(start, Repeat(pattern="30 2 * * *", tz="America/New_York"))
    [[node_value]] = await node_next_millis(node, [["30 2 * * *", "America/New_York", start, None, None, 1]])
    assert ours == node_value == ms("2025-11-02T07:30:00+00:00")
    port = default_repeat_strategy(start, {"pattern": "30 2 * * *", "tz": "America/New_York"})
    assert port == ms("2025-11-02T08:30:00+00:00")


SYNTAX = (
    "* * * * *",
    "*/5 * * * * *",
    "0 0 * * 0,7",
    "0 0 * * 7",
    "0 0 * * 5-7",
    "0 0 * * sun-sat",
    "0 0 * jan-mar MON-FRI",
    "0 0 * * JUL",
    "0 0 L * *",
    "0 0 L 2 *",
    "0 0 5L * *",
    "0 0 * * 5L",
    "0 0 * * 1,5L",
    "0 0 * * L",
    "0 0 * * 5#3",
    "0 0 * * fri#5",
    "0 0 * * 5#6",
    "0 0 * * 5#0x3",
    "0 0 * * 1-5#2",
    "0 0 LW * *",
    "0 0 15W * *",
    "0 0 30 2 *",
    "0 0 31 4 *",
    "0 0 29 2 *",
    "0 0 30,31 2 *",
    "0 0 31 2 1",
    "1-5-7 * * * *",
    "*/0 * * * *",
    "0/0 * * * *",
    "1/5L * * * *",
    "0 0 1/5L * *",
    "0 0 L-2 * *",
    "60 * * * *",
    "0 24 * * *",
    "0 0 0 * *",
    "0 0 * 13 *",
    "0 0 * 0 *",
    "0 0 * * 8",
    "H * * * *",
    "H(0-29)/10 H * * *",
    "H(0-5),0x1f * * * *",
    "@daily",
    "@DAILY",
    "@weekdays",
    "@reboot",
    "",
    "   ",
    "* * * * * * *",
    "0 0 ? * ?",
    "5 4",
    "1,2,,3 * * * *",
    "0 0 * * mon,tue,xyz",
    "0 0 1 1 * 2025",
)


async def test_parser_accepts_and_reads_exactly_what_node_does(node: NodeDriver) -> None:
    node_fields = await node.eval(
        r"""
      const { CronExpressionParser } = process.mainModule.require('cron-parser');
      return args.patterns.map(p => {
        try {
          const f = CronExpressionParser.parse(p, { hashSeed: 'seed' }).fields;
          return [f.second, f.minute, f.hour, f.dayOfMonth, f.month, f.dayOfWeek].map(x => x.values)
            .concat([f.dayOfWeek.nthDay, f.dayOfMonth.isWildcard, f.dayOfWeek.isWildcard,
                     f.dayOfMonth.hasLastChar, f.dayOfWeek.hasLastChar]);
        } catch (e) { return 'error'; }
      });""",
        patterns=list(SYNTAX),
    )
    accepted = 0
    for pattern, expected in zip(SYNTAX, node_fields):
        try:
            f = parse(pattern, hash_seed="seed")
        except InvalidSchedule:
            assert expected == "error", f"{pattern!r}: Node accepts it as {expected}, bullbridge refuses it"
            continue
        accepted += 1
        got = [list(x.values) for x in (f.second, f.minute, f.hour, f.day_of_month, f.month, f.day_of_week)]
        got += [
            f.day_of_week.nth_day,
            f.day_of_month.wildcard,
            f.day_of_week.wildcard,
            f.day_of_month.has_last,
            f.day_of_week.has_last,
        ]
        assert got == expected, pattern
    assert accepted >= 25
