"""The HTML report: sections registered by each capability, one self-contained offline file."""

from rotelab.report.registry import Section, register_section, sections
from rotelab.report.html import build_report

__all__ = ["Section", "register_section", "sections", "build_report"]
