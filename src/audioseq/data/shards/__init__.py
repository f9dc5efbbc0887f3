"""Tar shards (WebDataset layout): writing them (``writer``), their JSON index (``index``),
opening local, HTTP and fsspec storage (``storage``), reading members straight from tar
headers (``tar_members``) and which shards each rank and worker reads (``plan``). The
source that trains from them is :mod:`audioseq.data.sources.shards`."""
