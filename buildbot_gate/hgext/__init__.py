"""Mercurial extensions the gate sends to its workers, as files: their source is read here, never
imported into the master."""
