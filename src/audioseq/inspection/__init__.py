"""audioseq-inspect's parts: reading every clip of a source (``clips``), adding up what was
found (``tally``) and writing it down (``report``)."""
