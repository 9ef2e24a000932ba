// Readable labels for the fields the page shows. The registry keeps each
// door's fields under their wire names (`is_baseline`, `trainingDatasetVersionId`);
// a person reads "Baseline" and "Training dataset version". A key not in the
// table is humanised: `trainingDatasetVersionId` → "Training dataset version id".

const LABELS = {
  // Octomil
  framework: 'Framework',
  framework_version: 'Framework version',
  is_baseline: 'Baseline',
  round_id: 'Federated round',
  use_case: 'Use case',
  accuracy: 'Accuracy',
  loss: 'Loss',
  // DataRobot
  targetType: 'Target type',
  targetName: 'Target column',
  language: 'Language',
  positiveClassLabel: 'Positive class',
  negativeClassLabel: 'Negative class',
  predictionThreshold: 'Prediction threshold',
  classLabels: 'Class labels',
  trainingDatasetId: 'Training dataset',
  trainingDatasetVersionId: 'Training dataset version',
  trainingDataFileName: 'Training data file',
  trainingDataPartitionColumn: 'Training data partition column',
  isTrainingDataForVersionsPermanentlyEnabled: 'Training data per version (permanent)',
  calibratePredictions: 'Calibrate predictions',
  userProvidedId: 'Your id',
  playgroundId: 'Playground',
  desiredMemory: 'Desired memory',
  maximumMemory: 'Maximum memory',
  replicas: 'Replicas',
  resourceBundleId: 'Resource bundle',
  networkEgressPolicy: 'Network egress',
  // Paperspace
  modelType: 'Model type',
  isPublic: 'Public',
  projectId: 'Project',
  storageProviderId: 'Storage provider',
  url: 'URL',
};

// `trainingDatasetVersionId` → "Training dataset version id", `is_baseline`
// → "Is baseline", `URLPath` → "URL path".
export function humanise(key) {
  const words = String(key)
    .replace(/[_\-.]+/g, ' ')
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((w) => (/^[A-Z0-9]{2,}$/.test(w) ? w : w.toLowerCase()));
  if (!words.length) return String(key);
  words[0] = words[0].charAt(0).toUpperCase() + words[0].slice(1);
  return words.join(' ');
}

export function label(key) {
  return Object.prototype.hasOwnProperty.call(LABELS, key) ? LABELS[key] : humanise(key);
}

// A field's value as text: yes/no for booleans, a list joined, an object as JSON.
export function valueText(v) {
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (Array.isArray(v) && v.every((x) => typeof x !== 'object')) return v.join(', ');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}
