"""The reports: per sample an HTML page and a CSV, an index of samples, thumbnails.

    scheduler.ReportScheduler: the report thread, beside the measuring
    index / sample_page / view_pages: the pages; page_render: what they share
    plots: the PSD plots' geometry; thumbnails: the outlined frames
    particles_csv / sample_csv: the sample's particles as a CSV, appended
"""

from .scheduler import ReportScheduler, rebuild_due, write_reports

__all__ = ["ReportScheduler", "rebuild_due", "write_reports"]
