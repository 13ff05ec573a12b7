"""The sweep report: rows, header, recommendation, Markdown and HTML renderings."""
