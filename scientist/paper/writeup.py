"""The write-up stage: the coder fills the paper section by section; code writes every number in it.

The idea folder gets latex/ from the template. When the write-up is given engines to search, the citation rounds
(citations.py) first choose the papers to cite. Code writes the results table (from the runs' final_info.json), the
figure includes (from the plots) and references.bib (only from literature-search records: the papers the idea's
novelty check saw and those the citation rounds chose; with no search there are no references), and each section
prompt lists the keys there, with what each chosen paper is cited for. The coder (aider) then fills one section
file at a time and refines each once. After every edit the paper is compiled: LaTeX errors go back to the coder,
and a section that still does not compile is reverted to its last compiling version, so a PDF is always produced.
Every build starts with latex_guard's check (no file outside latex/, no TeX file or shell primitives, listed
packages only), whose refusals go back the same way, and runs its tools in the sandbox (tex_tools). chktex and the
paper checks (cite keys, figures, labels, duplicates) are fed back once; the claim checker's contradictions too,
and any that remain are flagged in the idea's state.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from scientist.experiment.manifest import Manifest
from scientist.experiment.noise import read_frontier
from scientist.llm.coder import Coder
from scientist.llm.ledger import Budget, Ledger
from scientist.llm.prompts import PROMPTS_DIR, render
from scientist.paper.citations import CITATIONS_FILE, CitationRecord, CitationRounds, gather_citations
from scientist.paper.claims import contradictions_by_file
from scientist.paper.generated import write_appendix, write_bibliography, write_figures, write_results_table
from scientist.paper.latex import (
    BUILD_TIMEOUT_S,
    SECTIONS,
    LatexProblem,
    PassedChecks,
    ascii_words,
    compile_pdf,
    copy_template,
)
from scientist.paper.latex_checks import check_paper, chktex
from scientist.store.files import atomic_write_text
from scientist.store.folder import IdeaFolder

log = logging.getLogger(__name__)
LATEX_TEMPLATE = "latex"
WRITING_TIPS = "writing_tips.json"
FIX_ATTEMPTS = 2


class WriteupError(Exception):
    """No PDF could be built: the template itself, or the final build with bibtex, fails."""


@dataclass
class WriteupResult:
    pdf: Path
    reverted_sections: list[str] = field(default_factory=list)
    contradictions: list[str] = field(default_factory=list)


class PaperWriter:
    def __init__(self, folder: IdeaFolder, manifest: Manifest, model: str, ledger: Ledger, budget: Budget,
                 papers: list[dict], sections: tuple[str, ...] = SECTIONS, build_timeout_s: float = BUILD_TIMEOUT_S,
                 citations: CitationRounds | None = None):
        """`papers`: literature records the idea brings (its novelty check's), each with the engine that found it.
        `sections`: the ones the coder writes, in order (all by default); the others keep their text.
        `build_timeout_s`: the limit of each TeX tool run; a section whose build runs past it is fixed or reverted.
        `citations`: the engines and rounds of the citation rounds; None: no rounds, the references are `papers`."""
        self.folder, self.idea, self.model, self.ledger, self.budget = folder, folder.idea, model, ledger, budget
        self.build_timeout_s = build_timeout_s
        self.sections, self.manifest = sections, manifest
        self.latex_dir = copy_template(manifest.path / LATEX_TEMPLATE, folder.path)
        finished = folder.finished_runs()
        write_results_table(finished, manifest.metrics, self.latex_dir,
                            read_frontier(folder.path, manifest.baseline_plan.frontier_x))
        self.figure_labels = write_figures(folder.path, manifest, self.latex_dir)
        self.figure_labels += write_appendix(finished, manifest, folder.path, self.latex_dir)
        self.papers, self.citations = papers, citations
        self.cite_keys: dict[str, str] = {}
        self.references = render("writeup_no_references").strip()
        # A template may give writing tips of its own for each section (latex/writing_tips.json); the general ones
        # fill in any section it leaves out.
        own = manifest.path / LATEX_TEMPLATE / WRITING_TIPS
        self.tips = {**json.loads((PROMPTS_DIR / "writeup_tips.json").read_text()),
                     **(json.loads(own.read_text()) if own.is_file() else {})}
        self.reverted: list[str] = []
        self.checks = PassedChecks(folder.path / "logs" / "latex_checks.json", build_timeout_s)

    def write(self) -> WriteupResult:
        self.write_references()
        first = compile_pdf(self.latex_dir, self.build_timeout_s)
        if not first.ok:
            raise WriteupError(f"{self.latex_dir}: the paper template does not compile:\n"
                               + "\n".join(map(str, first.problems)))
        self.folder.commit("Paper template with the generated table, figures and references")
        for section in self.sections:
            self.edit(section, self.section_prompt(section), f"Paper: {section} written")
        for section in self.sections:
            self.edit(section, render("writeup_refine", section_name=section.replace("_", " "),
                                      section_file=self.section_file(section)), f"Paper: {section} refined")
        self.feed_back_checks()
        contradictions = self.feed_back_contradictions()
        final = compile_pdf(self.latex_dir, self.build_timeout_s)
        if not final.ok:
            raise WriteupError(f"{self.latex_dir}: the full build (with bibtex) failed:\n"
                               + "\n".join(map(str, final.problems)))
        self.folder.commit("Paper compiled")
        return WriteupResult(final.pdf, self.reverted, contradictions)

    def write_references(self):
        """The citation rounds (when there are engines to search), then references.bib from their choices and the
        idea's own records, and the references piece of the section prompts."""
        record = self.gather_citations() if self.citations else None
        chosen = record.records() if record else []
        self.cite_keys = write_bibliography(self.papers + chosen, self.latex_dir)
        if self.cite_keys:
            reasons = {tuple(ascii_words(paper["title"])): paper["cited_for"] for paper in chosen}
            self.references = render("writeup_references", listing="\n".join(
                _reference_line(key, title, reasons) for key, title in self.cite_keys.items())).strip()

    def gather_citations(self) -> CitationRecord:
        record = gather_citations(self.idea, self.citations, self.model, self.ledger, self.budget,
                                  self.manifest.field, self.folder.log)
        atomic_write_text(self.latex_dir / CITATIONS_FILE, json.dumps(record.to_json(), indent=2) + "\n")
        if record.unreachable and not record.engines:
            self.folder.log(f"citations: no paper chosen; {record.ended}")
        else:
            names = {engine.name: engine.display_name for engine in self.citations.engines}
            found_with = ", ".join(names.get(name, name) for name in record.engines) or "no engine"
            self.folder.log(f"citations: {len(record.citations)} paper(s) chosen in {record.rounds} round(s), found "
                            f"with {found_with}; the rounds ended: {record.ended}")
        return record

    def section_file(self, section: str) -> str:
        return f"latex/sections/{section}.tex"

    def section_prompt(self, section: str) -> str:
        labels = ", ".join(self.figure_labels)
        return render("writeup_section", title=self.idea["Title"], experiment=self.idea["Experiment"],
                      notes=self.folder.notes.read_text(), section_name=section.replace("_", " "),
                      section_file=self.section_file(section), tips=self.tips[section],
                      figure_labels=labels or "none", references=self.references)

    def edit(self, section: str, prompt: str, message: str):
        """One coder turn on one section file, then compile; fix from the log, or revert the section."""
        coder = Coder(self.folder.path, [self.section_file(section)], self.model, self.ledger, self.budget)
        coder.ask(prompt, stage=f"writeup_{section}")
        result = self.checks.compile(self.latex_dir)
        for _ in range(FIX_ATTEMPTS):
            if result.ok:
                break
            coder.ask(render("writeup_latex_error", section_file=self.section_file(section),
                             problems=_listing(result.problems), log_tail=result.log_tail), stage=f"writeup_{section}")
            result = self.checks.compile(self.latex_dir)
        if not result.ok:
            self.folder.repo.git.checkout("HEAD", "--", self.section_file(section))
            self.reverted.append(section)
            self.folder.log(f"writeup: {section} did not compile after {FIX_ATTEMPTS} fixes; reverted to its last "
                            "compiling version")
            return
        self.folder.commit(message)

    def feed_back_checks(self):
        """chktex warnings and paper-check problems go back to the coder once, section by section."""
        problems = chktex(self.latex_dir) + check_paper(self.latex_dir)
        for section in SECTIONS:
            mine = [p for p in problems if Path(p.file).name == f"{section}.tex"]
            if mine:
                self.edit(section, render("writeup_lint", section_file=self.section_file(section),
                                          problems=_listing(mine), cite_keys=", ".join(self.cite_keys) or "none"),
                          f"Paper: {section} checks fixed")

    def feed_back_contradictions(self) -> list[str]:
        """Claims in the paper that the result files contradict go back to the coder once; returns what remains.
        A section's contradictions depend on its own text only, so one check serves every section."""
        found_by_file = contradictions_by_file(self.folder.path, self.manifest)
        for section in SECTIONS:
            found = found_by_file.get(f"{section}.tex", [])
            if found:
                self.edit(section, render("writeup_lint", section_file=self.section_file(section),
                                          problems="\n".join(found), cite_keys=", ".join(self.cite_keys) or "none"),
                          f"Paper: {section} contradictions fixed")
        remaining_by_file = contradictions_by_file(self.folder.path, self.manifest)
        remaining = [c for section in SECTIONS for c in remaining_by_file.get(f"{section}.tex", [])]
        for contradiction in remaining:
            self.folder.log(f"writeup: the paper contradicts the results: {contradiction}")
        return remaining


def _reference_line(key: str, title: str, reasons: dict) -> str:
    """One key of references.bib for the section prompts, with what it is cited for when the rounds chose it."""
    reason = reasons.get(tuple(ascii_words(title)))
    quoted = json.dumps(title, ensure_ascii=False)
    if reason is None:
        return render("writeup_reference", key=key, title=quoted).rstrip()
    return render("writeup_reference_chosen", key=key, title=quoted,
                  reason=json.dumps(reason, ensure_ascii=False)).rstrip()


def _listing(problems: list[LatexProblem]) -> str:
    return "\n".join(f"- {p}" for p in problems) or "- (no message; see the log)"
