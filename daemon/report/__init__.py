"""The reports: per sample an HTML page and a CSV, an index of samples, thumbnails.

    scheduler.ReportScheduler: the report thread, beside the measuring
    index / sample_page / view_pages: the pages; page_render: what they share
    plots: the PSD plots' geometry; thumbnails: the outlined frames
    particles_csv / sample_csv: the sample's particles as a CSV, appended
    names: the reports' file names, safe on any share and stable per sample
"""

from .index import stale_samples, write_index
from .names import (THUMBS, sample_csv_name, sample_page_name, sample_slug, thumbnail_name, thumbnail_path,
                    view_name)
from .page_render import QUESTIONABLE_SCALE
from .particles_csv import CSV_COLUMNS, write_csv
from .plots import format_number
from .sample_page import read_sample_data, write_sample_report
from .scheduler import ReportScheduler, rebuild_due, write_reports
from .thumbnails import encode_thumbnail, write_thumbnail

__all__ = ["CSV_COLUMNS", "QUESTIONABLE_SCALE", "ReportScheduler", "THUMBS", "encode_thumbnail", "format_number",
           "read_sample_data", "rebuild_due", "sample_csv_name", "sample_page_name", "sample_slug", "stale_samples",
           "thumbnail_name", "thumbnail_path", "view_name", "write_csv", "write_index", "write_reports",
           "write_sample_report", "write_thumbnail"]
