"""The Debian FAQ's answer sections (text nobody here wrote), for the knowledge-base benchmarks.

Needs the `debian-faq` package (its HTML chapters in /usr/share/doc/debian/FAQ).
"""
import html.parser
import os
import re

FAQ_DIR = "/usr/share/doc/debian/FAQ"


class Sections(html.parser.HTMLParser):
    """(number, question, answer) for every h2/h3 section title of a chapter."""

    def __init__(self):
        super().__init__()
        self.sections, self.heading, self.in_heading, self.body, self.divs = [], None, False, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("h2", "h3") and attrs.get("class") == "title":
            self.flush()
            self.in_heading, self.heading = True, ""
        elif tag == "div":
            self.divs.append(attrs.get("class") in ("navfooter", "navheader", "toc"))
        elif tag in ("p", "li", "pre", "dt", "dd", "br"):
            self.body.append("\n\n")

    def handle_endtag(self, tag):
        if tag in ("h2", "h3") and self.in_heading:
            self.in_heading = False
        elif tag == "div" and self.divs:
            self.divs.pop()

    def handle_data(self, data):
        if self.in_heading:
            self.heading += data
        elif self.heading is not None and not any(self.divs):
            self.body.append(data)

    def flush(self):
        if self.heading:
            match = re.match(r"\s*([\d.]+)\s+(.*)", " ".join(self.heading.split()))
            body = re.sub(r"[ \t]+", " ", "".join(self.body))
            body = "\n\n".join(p.strip() for p in body.split("\n\n") if p.strip())
            if match and len(body) > 20:
                self.sections.append((match.group(1).rstrip("."), match.group(2), body))
        self.heading, self.body = None, []


def faq_pairs():
    pairs = []
    for name in sorted(os.listdir(FAQ_DIR)):
        if name.endswith(".en.html") and name != "index.en.html":
            parser = Sections()
            with open(os.path.join(FAQ_DIR, name), encoding="utf-8") as f:
                parser.feed(f.read())
            parser.flush()
            pairs.extend(parser.sections)
    return pairs
