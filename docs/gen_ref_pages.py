"""Build-time pages for the site: the API reference and the result figures.

Run by the ``gen-files`` plugin of ``mkdocs.yml``. One reference page per module of
``src/forgetbench`` (``reference/…``, listed in ``reference/SUMMARY.md`` for the
``literate-nav`` plugin), so renaming or splitting a module needs no edit here; the curated
figures of ``results/figures/`` are copied to ``figures/`` for the pages that show them.
"""

from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
FIGURES = ROOT / "results" / "figures"

nav = mkdocs_gen_files.Nav()
for path in sorted(SRC.rglob("*.py")):
    module_path = path.relative_to(SRC).with_suffix("")
    doc_path = path.relative_to(SRC).with_suffix(".md")
    parts = tuple(module_path.parts)
    if parts[-1] == "__main__":
        continue
    if parts[-1] == "__init__":
        parts = parts[:-1]
        doc_path = doc_path.with_name("index.md")
    nav[parts] = doc_path.as_posix()
    full_doc_path = Path("reference", doc_path)
    with mkdocs_gen_files.open(full_doc_path, "w") as page:
        page.write(f"::: {'.'.join(parts)}\n")
    mkdocs_gen_files.set_edit_path(full_doc_path, path.relative_to(ROOT))

with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as nav_file:
    nav_file.writelines(nav.build_literate_nav())

for figure in sorted(FIGURES.glob("*.png")):
    with mkdocs_gen_files.open(f"figures/{figure.name}", "wb") as out:
        out.write(figure.read_bytes())
