"""``adcut serve``: ad-free copies of podcast feeds, for any podcast app.

``paths`` (the data folder), ``store`` (SQLite: feeds, episodes, the job queue with leases),
``fetch`` (upstream HTTP), ``feed`` (reading and rewriting the RSS), ``worker`` (download, detect,
cut, in worker processes), ``refresh`` (upstream feed -> queued episodes), ``server`` (HTTP).
"""
