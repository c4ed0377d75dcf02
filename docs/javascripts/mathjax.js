// MathJax 3 typesets the tutorials' math, written $...$ and $$...$$ in their Markdown cells; code and
// outputs (<pre>, <code>) are left alone, so a shell's $VAR in them stays as it is.
window.MathJax = {
  tex: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
  },
  options: { skipHtmlTags: ["script", "noscript", "style", "textarea", "pre", "code"] },
};

// the theme swaps page content without a reload when instant navigation is on: typeset each new page
if (typeof document$ !== "undefined") {
  document$.subscribe(() => { if (window.MathJax.typesetPromise) { window.MathJax.typesetPromise(); } });
}
