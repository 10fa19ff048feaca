"""Unit tests of the service's pure logic: no database, no server, no network."""
