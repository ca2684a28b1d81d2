"""File data: what a file is (magic), which bytes of it crossed the wire (ranges), each
file's transfers and their digests, computed beside the decoder."""
