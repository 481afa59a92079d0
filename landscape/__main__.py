from landscape.cli import entry

entry()
