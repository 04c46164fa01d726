"""Participant HTML report (figures as PNG files next to the HTML).

Import ``bids_app.reports.participant`` for :class:`RunReportData` and
:func:`write_participant_report`; matplotlib is only imported when figures are drawn.
"""

from .participant import RunReportData, write_participant_report

__all__ = ["RunReportData", "write_participant_report"]
