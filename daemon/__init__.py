"""The operation of psdwatch: watch, queue, store, report, schedule and the CLI.

It calls the pipeline; the pipeline never calls back.
"""
