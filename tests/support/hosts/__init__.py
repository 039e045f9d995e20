"""Host apps the tests run as processes: a click CLI and a typer CLI wired with idstitch."""
