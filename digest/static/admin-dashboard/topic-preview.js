// The topic form's "Preview matches" button: without JavaScript it opens the preview
// page in a new tab; with it, the preview is fetched and shown under the button.
"use strict";
document.addEventListener("click", async (event) => {
  const button = event.target.closest("#topic-preview-button");
  if (!button) return;
  event.preventDefault();
  const result = document.getElementById("topic-preview-result");
  result.textContent = "Counting…";
  try {
    const response = await fetch(button.formAction, {
      method: "POST",
      body: new FormData(button.form),
      credentials: "same-origin",
    });
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const preview = page.getElementById("topic-preview");
    result.replaceChildren(...(preview ? preview.childNodes : [document.createTextNode("Preview failed.")]));
  } catch (error) {
    result.textContent = "Preview failed: " + error;
  }
});
