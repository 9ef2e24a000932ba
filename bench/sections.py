"""A marked section of BENCHMARKS.md that a benchmark owns and rewrites on
every run: `<!-- NAME:begin -->` … `<!-- NAME:end -->`, appended the first
time."""


def write_section(path, name, text):
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    with open(path) as f:
        doc = f.read()
    block = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc:
        doc = doc[:doc.index(begin)] + block + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(doc)


def targets_table(rows):
    """Markdown lines for rows of (what, modelreg, baseline, ratio, target, met)."""
    met = lambda m: "yes" if m else "**NO**"
    table = ["| what | modelreg | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    return table + [f"| {w} | {o} | {b} | {r} | {t} | {met(m)} |" for w, o, b, r, t, m in rows]


def publish(root, name, heading, table, raw):
    """Prints a benchmark's heading and table (its raw samples on stderr) and,
    unless BENCH_NO_WRITE is set, rewrites its section of BENCHMARKS.md."""
    import os
    import sys
    text = "\n".join([heading, "", *table])
    print(text)
    print("raw: " + repr(raw), file=sys.stderr)
    if not os.environ.get("BENCH_NO_WRITE"):
        write_section(os.path.join(root, "BENCHMARKS.md"), name, text)
