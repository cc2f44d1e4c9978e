/* Search on a course site opened from disk (file://).
 *
 * MkDocs Material runs its search in a Web Worker, and Chromium refuses to start a worker from a
 * file:// page. Opened from disk, this page replaces Worker with a stand-in that runs the worker's
 * script in a hidden iframe of the page's own origin and passes the messages across: the script's
 * postMessage reaches the page's listeners, and the page's messages reach the script's "message"
 * listeners. Served over HTTP the real Worker is kept. (Material also loads its search index from
 * search/search_index.js instead of fetching search_index.json when opened from disk.)
 */
(function () {
  "use strict";
  if (location.protocol !== "file:") return;

  class FrameWorker extends EventTarget {
    constructor(url) {
      super();
      this.onmessage = null;
      this.onerror = null;
      this._queue = [];
      this._ready = false;
      this._frame = document.createElement("iframe");
      this._frame.hidden = true;
      this._frame.setAttribute("aria-hidden", "true");
      this._frame.title = "search";
      (document.body || document.documentElement).appendChild(this._frame);
      const scope = this._frame.contentWindow;
      scope.postMessage = (data) => setTimeout(() => this._receive(data));
      scope.importScripts = () => {
        throw new Error("importScripts is not available to a worker run from a file:// page");
      };
      const script = scope.document.createElement("script");
      script.src = new URL(url, location.href).href;
      script.onload = () => {
        this._ready = true;
        this._queue.splice(0).forEach((data) => this._send(data));
      };
      script.onerror = () => {
        const event = new Event("error");
        if (this.onerror) this.onerror(event);
        this.dispatchEvent(event);
      };
      scope.document.head.appendChild(script);
      this._scope = scope;
    }

    _receive(data) {
      const event = new MessageEvent("message", { data });
      if (this.onmessage) this.onmessage(event);
      this.dispatchEvent(event);
    }

    _send(data) {
      setTimeout(() => this._scope.dispatchEvent(new this._scope.MessageEvent("message", { data })));
    }

    postMessage(data) {
      if (this._ready) this._send(data);
      else this._queue.push(data);
    }

    terminate() {
      this._frame.remove();
    }
  }

  window.Worker = FrameWorker;
})();
