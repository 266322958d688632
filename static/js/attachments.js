// Images for vision models: attach (file picker) or paste into the prompt. Offered only while
// every model that will receive the message can see (`canAttach()`).
(function () {
  "use strict";
  const Y = (window.Yardstick = window.Yardstick || {});
  const MAX_BYTES = 4 * 1024 * 1024;

  Y.Attachments = class {
    constructor({ root, prompt, canAttach }) {
      this.root = root; // contains [data-attach], [data-attach-input], [data-attach-list]
      this.prompt = prompt;
      this.canAttach = canAttach;
      this.images = []; // data: URLs
      this.button = root.querySelector("[data-attach]");
      this.input = root.querySelector("[data-attach-input]");
      this.list = root.querySelector("[data-attach-list]");
      this.error = root.querySelector("[data-attach-error]");
      this.button.addEventListener("click", () => this.input.click());
      this.input.addEventListener("change", () => {
        [...this.input.files].forEach((file) => this.add(file));
        this.input.value = "";
      });
      prompt.addEventListener("paste", (event) => {
        if (!this.canAttach()) return;
        const files = [...(event.clipboardData?.files || [])].filter((f) => f.type.startsWith("image/"));
        if (files.length) {
          event.preventDefault();
          files.forEach((file) => this.add(file));
        }
      });
      this.refresh();
    }
    add(file) {
      this.showError("");
      if (!file.type.startsWith("image/")) return this.showError("Only images can be attached.");
      if (file.size > MAX_BYTES) return this.showError("Images must be under 4 MB.");
      const reader = new FileReader();
      reader.onload = () => { this.images.push(reader.result); this.refresh(); };
      reader.readAsDataURL(file);
    }
    showError(text) { if (this.error) { this.error.textContent = text; this.error.hidden = !text; } }
    refresh() {
      const allowed = this.canAttach();
      this.button.hidden = !allowed;
      if (!allowed) this.images = [];
      this.list.replaceChildren(...this.images.map((url, i) => {
        const item = document.createElement("span");
        item.className = "attachment";
        item.appendChild(Y.imageThumb(url));
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "attachment-remove";
        remove.title = "Remove image";
        remove.textContent = "×";
        remove.addEventListener("click", () => { this.images.splice(i, 1); this.refresh(); });
        item.appendChild(remove);
        return item;
      }));
      this.list.hidden = this.images.length === 0;
    }
    // The message content: plain text, or OpenAI content parts when images are attached.
    take(text) {
      if (!this.images.length) return text;
      const parts = [{ type: "text", text }];
      for (const url of this.images) parts.push({ type: "image_url", image_url: { url } });
      this.images = [];
      this.refresh();
      return parts;
    }
  };

  // Only data:image URLs the user picked are ever shown as images (never model output).
  Y.imageThumb = function (url) {
    const img = document.createElement("img");
    img.className = "thumb";
    img.alt = "Attached image";
    if (typeof url === "string" && url.startsWith("data:image/")) img.src = url;
    return img;
  };
})();
