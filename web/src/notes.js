// Bind a <textarea> to a Y.Text: local edits become minimal insert/delete
// operations, remote edits update the field and keep the caret in place.

export function bindTextarea (textarea, ytext) {
  const origin = { textarea }
  textarea.value = ytext.toString()

  const onInput = () => {
    const before = ytext.toString()
    const after = textarea.value
    let start = 0
    while (start < before.length && start < after.length && before[start] === after[start]) start++
    let end = 0
    while (end < before.length - start && end < after.length - start &&
           before[before.length - 1 - end] === after[after.length - 1 - end]) end++
    ytext.doc.transact(() => {
      if (before.length - start - end > 0) ytext.delete(start, before.length - start - end)
      if (after.length - start - end > 0) ytext.insert(start, after.slice(start, after.length - end))
    }, origin)
  }

  const onChange = (event, transaction) => {
    if (transaction.origin === origin) return
    let { selectionStart: s, selectionEnd: e } = textarea
    let index = 0
    for (const op of event.delta) {
      if (op.retain) index += op.retain
      if (op.insert) {
        const n = op.insert.length
        if (index <= s) s += n
        if (index <= e) e += n
        index += n
      }
      if (op.delete) {
        if (index < s) s = Math.max(index, s - op.delete)
        if (index < e) e = Math.max(index, e - op.delete)
      }
    }
    textarea.value = ytext.toString()
    if (document.activeElement === textarea) textarea.setSelectionRange(s, e)
  }

  textarea.addEventListener('input', onInput)
  ytext.observe(onChange)
  return () => {
    textarea.removeEventListener('input', onInput)
    ytext.unobserve(onChange)
  }
}
