"""The fuzzer: one implementation that both the CI suite (a short run, fixed seed) and
`tools/fuzz.py` (a long run) call.

Imported as `fuzzkit.<module>` (tests/ is on sys.path): a unique top-level name, like `testkit`.

- `seeds`: real inputs taken from the vector files (the suite's loader, `conftest.VECTORS`).
- `mutate`: bit flips, byte sets, truncations, insertions, deletions, splices and
  length-field corruption, all driven by one `random.Random`.
- `generate`: random but well-formed BTP/ILP packets, protocol-data entries and JSON.
- `decoders`: every decoder and the sans-I/O session fed generated and mutated inputs; only the
  documented exception of each may come out.
- `listener_proc` (a child process) and `live`: a real Plugin listener fed frames over real
  WebSockets while a well-behaved client keeps paying it; `listener_v2_proc` and `live_v2` the
  same for a BTP 2.0 `BtpPlugin`. What both share: `sockets` (the child process, the counters,
  raw WebSockets) and, in the children, `child_io`.
- `run`: the two together, a report, and the command line.
"""
