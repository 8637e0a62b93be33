<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="de_DE">
<context>
    <name>SmqgisDock</name>
    <message>
        <source>Soil moisture (smqgis)</source>
        <translation>Bodenfeuchte (smqgis)</translation>
    </message>
    <message>
        <source>Where and when</source>
        <translation>Wo und wann</translation>
    </message>
    <message>
        <source>Full extent of the inputs</source>
        <translation>Gesamte Ausdehnung der Eingaben</translation>
    </message>
    <message>
        <source>Map area: the canvas extent, a layer's extent or a rectangle drawn on the map</source>
        <translation>Kartenbereich: die Ausdehnung der Kartenansicht, eines Layers oder ein auf der Karte gezeichnetes Rechteck</translation>
    </message>
    <message>
        <source>Area</source>
        <translation>Gebiet</translation>
    </message>
    <message>
        <source>Date</source>
        <translation>Datum</translation>
    </message>
    <message>
        <source>The bundled sample (simulated)</source>
        <translation>Mitgelieferte Beispielszene (simuliert)</translation>
    </message>
    <message>
        <source>My layers</source>
        <translation>Meine Layer</translation>
    </message>
    <message>
        <source>Earth Engine</source>
        <translation>Earth Engine</translation>
    </message>
    <message>
        <source>Inputs</source>
        <translation>Eingaben</translation>
    </message>
    <message>
        <source>Model</source>
        <translation>Modell</translation>
    </message>
    <message>
        <source>smqgis ONNX models (*.onnx)</source>
        <translation>smqgis-ONNX-Modelle (*.onnx)</translation>
    </message>
    <message>
        <source>Other model file</source>
        <translation>Andere Modelldatei</translation>
    </message>
    <message>
        <source>Mode</source>
        <translation>Modus</translation>
    </message>
    <message>
        <source>Device</source>
        <translation>Gerät</translation>
    </message>
    <message>
        <source>GeoTIFF (*.tif)</source>
        <translation>GeoTIFF (*.tif)</translation>
    </message>
    <message>
        <source>Where to write the map; empty: a temporary file</source>
        <translation>Wohin die Karte geschrieben wird; leer: eine temporäre Datei</translation>
    </message>
    <message>
        <source>Output</source>
        <translation>Ausgabe</translation>
    </message>
    <message>
        <source>Run</source>
        <translation>Starten</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>Abbrechen</translation>
    </message>
    <message>
        <source>Value at a click</source>
        <translation>Wert per Klick</translation>
    </message>
    <message>
        <source>Click the map to see the soil moisture of the result there</source>
        <translation>Klicken Sie in die Karte, um dort die Bodenfeuchte des Ergebnisses zu sehen</translation>
    </message>
    <message>
        <source>Ready.</source>
        <translation>Bereit.</translation>
    </message>
    <message>
        <source>Kind: {kind}, variant {variant}, {res:g} m</source>
        <translation>Art: {kind}, Variante {variant}, {res:g} m</translation>
    </message>
    <message>
        <source>Trained on: {what}</source>
        <translation>Trainiert mit: {what}</translation>
    </message>
    <message>
        <source>coming with the Earth Engine algorithms</source>
        <translation>kommt mit den Earth-Engine-Algorithmen</translation>
    </message>
    <message>
        <source>Bundled demo model (simulated data)</source>
        <translation>Mitgeliefertes Demo-Modell (simulierte Daten)</translation>
    </message>
    <message>
        <source>No model chosen.</source>
        <translation>Kein Modell gewählt.</translation>
    </message>
    <message>
        <source>Choose a model.</source>
        <translation>Wählen Sie ein Modell.</translation>
    </message>
    <message>
        <source>Cancelling...</source>
        <translation>Wird abgebrochen...</translation>
    </message>
    <message>
        <source>Cancelled; no map was written.</source>
        <translation>Abgebrochen; es wurde keine Karte geschrieben.</translation>
    </message>
    <message>
        <source>The run failed; see the Processing log (View &gt; Panels &gt; Log Messages).</source>
        <translation>Der Lauf ist fehlgeschlagen; siehe das Processing-Protokoll (Ansicht &gt; Bedienfelder &gt; Protokollmeldungen).</translation>
    </message>
    <message>
        <source>Done: {path}</source>
        <translation>Fertig: {path}</translation>
    </message>
    <message>
        <source>not stated</source>
        <translation>nicht angegeben</translation>
    </message>
    <message>
        <source>Test ({split}): R {r:.3f}, ubRMSE {ubrmse:.3f} m3/m3, {n} sensors</source>
        <translation>Test ({split}): R {r:.3f}, ubRMSE {ubrmse:.3f} m3/m3, {n} Sensoren</translation>
    </message>
    <message>
        <source>Trained on SIMULATED data: its maps show how the plugin works, they are not measurements of real soil moisture.</source>
        <translation>Mit SIMULIERTEN Daten trainiert: Seine Karten zeigen, wie das Plugin arbeitet; sie sind keine Messungen der echten Bodenfeuchte.</translation>
    </message>
    <message>
        <source>Earth Engine inputs are coming with the Earth Engine algorithms.</source>
        <translation>Earth-Engine-Eingaben kommen mit den Earth-Engine-Algorithmen.</translation>
    </message>
    <message>
        <source>Running {id}...</source>
        <translation>{id} läuft...</translation>
    </message>
    <message>
        <source>Device used: {device}</source>
        <translation>Verwendetes Gerät: {device}</translation>
    </message>
    <message>
        <source>Soil moisture {date} - {label}</source>
        <translation>Bodenfeuchte {date} - {label}</translation>
    </message>
    <message>
        <source>The map {path} could not be loaded.</source>
        <translation>Die Karte {path} konnte nicht geladen werden.</translation>
    </message>
    <message>
        <source>Missing Python packages: {names}</source>
        <translation>Fehlende Python-Pakete: {names}</translation>
    </message>
    <message>
        <source>Choose at least one input layer, or use the bundled sample.</source>
        <translation>Wählen Sie mindestens einen Eingabe-Layer oder verwenden Sie die mitgelieferte Beispielszene.</translation>
    </message>
    <message>
        <source>The algorithm {id} is not registered.</source>
        <translation>Der Algorithmus {id} ist nicht registriert.</translation>
    </message>
    <message>
        <source>No soil moisture at ({x:.1f}, {y:.1f})</source>
        <translation>Keine Bodenfeuchte bei ({x:.1f}, {y:.1f})</translation>
    </message>
    <message>
        <source>Soil moisture at ({x:.1f}, {y:.1f}): {v:.3f} m3/m3</source>
        <translation>Bodenfeuchte bei ({x:.1f}, {y:.1f}): {v:.3f} m3/m3</translation>
    </message>
    <message>
        <source>fast (fully convolutional)</source>
        <translation>schnell (vollständig faltend)</translation>
    </message>
    <message>
        <source>exact (window per pixel)</source>
        <translation>exakt (ein Fenster pro Pixel)</translation>
    </message>
    <message>
        <source>automatic (GPU if available)</source>
        <translation>automatisch (GPU, falls vorhanden)</translation>
    </message>
    <message>
        <source>CPU</source>
        <translation>CPU</translation>
    </message>
    <message>
        <source>Published model: {name}</source>
        <translation>Veröffentlichtes Modell: {name}</translation>
    </message>
    <message>
        <source>The sample has the dates {dates}; choose one of them.</source>
        <translation>Die Beispielszene hat die Daten {dates}; wählen Sie eines davon.</translation>
    </message>
</context>
<context>
    <name>DependencyDialog</name>
    <message>
        <source>smqgis: Python packages</source>
        <translation>smqgis: Python-Pakete</translation>
    </message>
    <message>
        <source>Install</source>
        <translation>Installieren</translation>
    </message>
    <message>
        <source>Installing...</source>
        <translation>Wird installiert...</translation>
    </message>
    <message>
        <source>Installing Python packages for smqgis</source>
        <translation>Python-Pakete für smqgis werden installiert</translation>
    </message>
    <message>
        <source>Or install them by hand:</source>
        <translation>Oder installieren Sie sie von Hand:</translation>
    </message>
    <message>
        <source>smqgis needs Python packages that QGIS does not ship: {pins}.
Install them into a folder of your QGIS profile ({target})? QGIS's own packages (numpy and the others) are never changed.</source>
        <translation>smqgis braucht Python-Pakete, die QGIS nicht mitbringt: {pins}.
Sollen sie in einen Ordner Ihres QGIS-Profils ({target}) installiert werden? Die eigenen Pakete von QGIS (numpy und die anderen) werden nie verändert.</translation>
    </message>
    <message>
        <source>The installation failed: {error}</source>
        <translation>Die Installation ist fehlgeschlagen: {error}</translation>
    </message>
</context>
<context>
    <name>SmqgisPlugin</name>
    <message>
        <source>Soil moisture panel</source>
        <translation>Bodenfeuchte-Bedienfeld</translation>
    </message>
    <message>
        <source>Install Python dependencies...</source>
        <translation>Python-Abhängigkeiten installieren...</translation>
    </message>
</context>
<context>
    <name>EstimateSm320mAlgorithm</name>
    <message>
        <source>Soil moisture 320 m from layers</source>
        <translation>Bodenfeuchte 320 m aus Layern</translation>
    </message>
    <message>
        <source>Soil moisture</source>
        <translation>Bodenfeuchte</translation>
    </message>
</context>
<context>
    <name>EstimateSmPublishedAlgorithm</name>
    <message>
        <source>Soil moisture 320 m with the published model (paper 000)</source>
        <translation>Bodenfeuchte 320 m mit dem veröffentlichten Modell (Paper 000)</translation>
    </message>
    <message>
        <source>Soil moisture</source>
        <translation>Bodenfeuchte</translation>
    </message>
</context>
<context>
    <name>ImportPublishedModelAlgorithm</name>
    <message>
        <source>Import the published model (paper 000, TF-1)</source>
        <translation>Veröffentlichtes Modell importieren (Paper 000, TF-1)</translation>
    </message>
    <message>
        <source>Models</source>
        <translation>Modelle</translation>
    </message>
</context>
<context>
    <name>EstimateSm3kmAlgorithm</name>
    <message>
        <source>Soil moisture 3 km (SMEN)</source>
        <translation>Bodenfeuchte 3 km (SMEN)</translation>
    </message>
    <message>
        <source>Soil moisture</source>
        <translation>Bodenfeuchte</translation>
    </message>
</context>
<context>
    <name>EeSignInAlgorithm</name>
    <message>
        <source>Sign in to Earth Engine</source>
        <translation>Bei Earth Engine anmelden</translation>
    </message>
    <message>
        <source>Earth Engine</source>
        <translation>Earth Engine</translation>
    </message>
</context>
<context>
    <name>FetchInputsEeAlgorithm</name>
    <message>
        <source>Fetch model inputs from Earth Engine</source>
        <translation>Modelleingaben aus Earth Engine laden</translation>
    </message>
    <message>
        <source>Earth Engine</source>
        <translation>Earth Engine</translation>
    </message>
</context>
<context>
    <name>SoilMoistureMapEeAlgorithm</name>
    <message>
        <source>Soil moisture map from Earth Engine</source>
        <translation>Bodenfeuchtekarte aus Earth Engine</translation>
    </message>
    <message>
        <source>Earth Engine</source>
        <translation>Earth Engine</translation>
    </message>
</context>
<context>
    <name>ValidateInsituAlgorithm</name>
    <message>
        <source>Validate against in-situ sensors</source>
        <translation>Mit In-situ-Sensoren validieren</translation>
    </message>
    <message>
        <source>Soil moisture</source>
        <translation>Bodenfeuchte</translation>
    </message>
</context>
</TS>
