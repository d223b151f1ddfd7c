"""Parses an iCalendar feed with the `icalendar` package (what many calendar
tools use) and prints what a subscriber would see, as JSON, for the Rust test
to compare with `rouse oncall`. Exits non-zero on a feed it cannot read or one
missing what RFC 5545 requires of a published calendar."""
import datetime
import json
import sys

import icalendar

text = sys.stdin.buffer.read()
cal = icalendar.Calendar.from_ical(text)
problems = []
for required in ("VERSION", "PRODID"):
    if required not in cal:
        problems.append(f"calendar without {required}")
if str(cal.get("VERSION")) != "2.0":
    problems.append("VERSION is not 2.0")


def utc(prop, name, uid):
    value = prop.dt
    if not isinstance(value, datetime.datetime) or value.utcoffset() != datetime.timedelta(0):
        problems.append(f"{uid}: {name} is not a UTC date-time: {value!r}")
        return None
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


events = []
for event in cal.walk("VEVENT"):
    uid = str(event.get("UID", ""))
    if not uid:
        problems.append("an event without UID")
    for required in ("DTSTAMP", "DTSTART", "DTEND", "SUMMARY"):
        if required not in event:
            problems.append(f"{uid}: no {required}")
    if problems:
        continue
    events.append({
        "uid": uid,
        "summary": str(event["SUMMARY"]),
        "description": str(event.get("DESCRIPTION", "")),
        "start": utc(event["DTSTART"], "DTSTART", uid),
        "end": utc(event["DTEND"], "DTEND", uid),
        "dtstamp": utc(event["DTSTAMP"], "DTSTAMP", uid),
    })
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(json.dumps({
    "name": str(cal.get("X-WR-CALNAME", "")),
    "refresh": str(cal.get("REFRESH-INTERVAL", "")),
    "ttl": str(cal.get("X-PUBLISHED-TTL", "")),
    "method": str(cal.get("METHOD", "")),
    "events": events,
}))
