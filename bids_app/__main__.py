"""``python -m bids_app`` runs the ``strokedfc`` command line."""

from bids_app.cli.run import main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
