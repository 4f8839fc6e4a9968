"""The record of what is done: the ledger and everything that makes a kill cost nothing.

Work writes files under temporary names and moves them into place (``commits.py``),
then reports a record (``records.py``); the ledger's one writer (``ledger.py``) turns
records into lines of ``.ledger.jsonl``, so a rerun skips what is done.  ``keyset.py``
holds a million keys compactly, ``results.py`` is what a run reports (failures,
step times, the summary), and ``manifest.py`` lists every output for the tools after us.

May import: ``sources``, ``stages``, ``models``, ``machine``, ``ops``, ``media`` and the
bottom modules; never the job, the engine, the backends or the command line.
"""
