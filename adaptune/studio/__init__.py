"""adaptune studio: the tuning form, runs, models, "Try it" and lineage as web pages.

Server-rendered HTML (Jinja2, autoescaped) with a little JavaScript, all served by the package:
nothing from a CDN, no Node build step. The pages call the same library functions as the CLI.
"""
