// Hookline console: copy buttons, confirmations, and the live trigger preview.
// Everything it shows is set with textContent, never as HTML.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.textContent);
        const label = button.textContent;
        button.textContent = "Copied";
        setTimeout(() => { button.textContent = label; }, 1500);
      } catch (_) {
        // No clipboard (an insecure origin): select the text so the operator can copy it.
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
    });
  }

  for (const button of document.querySelectorAll("button[data-confirm]")) {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.dataset.confirm)) event.preventDefault();
    });
  }

  const editor = document.getElementById("editor");
  const preview = document.getElementById("preview");
  if (editor && preview) {
    let timer = null;
    let sequence = 0;
    const run = async () => {
      const mine = ++sequence;
      const data = new URLSearchParams();
      for (const name of ["csrf", "code", "sample"]) {
        data.append(name, editor.elements[name].value);
      }
      let status = 0;
      let body = null;
      try {
        const response = await fetch("/ui/preview", {
          method: "POST",
          body: data,
          credentials: "same-origin",
          headers: { "Content-Type": "application/x-www-form-urlencoded" },
        });
        status = response.status;
        body = await response.json();
      } catch (error) {
        body = { error: { message: "The preview could not reach control: " + error } };
      }
      if (mine === sequence) show(status, body);
    };
    const element = (tag, className, text) => {
      const node = document.createElement(tag);
      if (className) node.className = className;
      if (text !== undefined) node.textContent = text;
      return node;
    };
    const show = (status, body) => {
      preview.replaceChildren();
      if (status !== 200) {
        const error = body && body.error ? body.error : { message: "The preview failed." };
        const box = element("div", "error");
        box.append(element("p", "", error.message));
        for (const problem of error.problems || []) {
          box.append(element("p", "", problem.field + ": " + problem.message));
        }
        preview.append(box);
        return;
      }
      const verdict = element("p");
      if (body.matched) {
        verdict.append(element("span", "badge ok", "fires"));
      } else {
        verdict.append(element("span", "badge warn", "does not fire"), " " + (body.reason || ""));
      }
      preview.append(verdict);
      if (body.error) {
        let where = body.error.field;
        if (body.error.line) where += " (line " + body.error.line + ", column " + body.error.column + ")";
        preview.append(element("p", "error", where + ": " + body.error.message));
      }
      for (const request of body.requests || []) {
        preview.append(element("pre", "json", JSON.stringify(request, null, 2)));
      }
      for (const skipped of body.skipped || []) {
        preview.append(element("p", "muted", String(skipped)));
      }
    };
    for (const field of editor.querySelectorAll("[data-preview]")) {
      field.addEventListener("input", () => {
        clearTimeout(timer);
        timer = setTimeout(run, 400);
      });
    }
  }
});
